"""Implicit and stiff solvers (work in progress: registers nothing yet)."""
