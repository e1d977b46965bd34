"""Fitting the project's linear face model to predicted maps."""
