"""Renderers of the canonical report document: CSV, HTML with inline SVG charts, PDF; and the dashboard page.

They take the JSON document (not the dataclasses), so a frozen snapshot renders exactly as it was published.
"""
