"""Encoders for movies (text, poster, combined) and users. Heavy imports happen inside constructors."""
