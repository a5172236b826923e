"""Request and response bodies of the API, one module per resource.

Request bodies forbid unknown fields (a typo is a 422 naming it, not a silent default);
strings refuse NUL characters, which PostgreSQL cannot store.
"""
