"""Shared pytest configuration: tests import the installed package, ``synthetic`` signals and ``stage_doubles``."""
