"""Attention scoring functions compared on GPT-2-style language models (see README.md)."""
