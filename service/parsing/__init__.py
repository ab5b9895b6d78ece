"""Files to text: one small module per format, a dispatcher by magic bytes, a parser process.

This room imports no use-case code: it turns bytes into a `Parsed` (canonical text, page
starts, headings) and knows nothing of jobs, catalogs or stores.
"""
