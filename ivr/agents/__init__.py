"""Agents: sign-in, states, routing waiting calls to them, the screen-pop and wrap-up."""
