"""Calls: durable per-CallSid state, webhook use cases and TwiML rendering."""
