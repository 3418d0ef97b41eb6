"""Files attached to a conversation: upload, type check, storage, who may download, and
their place in export, erasure and retention.

Modules: ``sniff`` (the type from the bytes), ``names`` (safe file names),
``storage`` (where the bytes live), ``upload`` (a multipart body streamed to storage),
``service`` (upload and download rules), ``lifecycle`` (deleting files whose rows went,
unsent uploads, orphans, and the export's ``files/``).
"""
