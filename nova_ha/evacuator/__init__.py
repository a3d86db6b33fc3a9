"""Evacuator: detect a failed compute host, fence it, evacuate it."""
