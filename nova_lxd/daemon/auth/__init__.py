"""Who may call the API: TLS certificates, the trust store, tokens."""
