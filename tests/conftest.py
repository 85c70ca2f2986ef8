"""Shared pytest configuration: tests import the installed package and ``synthetic`` helpers."""
