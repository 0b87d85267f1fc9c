"""One module per aggregate. Functions take `session` first and keyword-only arguments,
return None (or False for deletes) when the thing is not found, `flush()` so ids and
defaults are filled in, and leave `commit()` to the caller."""
