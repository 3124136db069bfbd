"""Menus: the admins' YAML language, its loader and checker, and the pure menu engine."""
