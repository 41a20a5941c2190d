"""LLM4Rec (arXiv 2510.01622): an LLM backbone with five modules, one file per module.

The model lands with the LLM4Rec issue; the package exists now so that the distribution's
layout is the one DESIGN.md fixes.
"""
