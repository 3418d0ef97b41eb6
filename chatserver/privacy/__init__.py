"""The privacy operations: identity, export, erasure, rectification, retention, consent, audit."""
