"""OMS signatures: DSSE envelopes in Sigstore bundles, signed with EC keys, certificates,
Sigstore keyless, and an optional ML-DSA-65 co-signature.

Modules: `dsse` (PAE, canonical JSON), `bundle` (read and write bundle JSON), `keys` (EC keys),
`pq` (ML-DSA), `certs` (X.509 chains and pins), `envelope` (verify and sign a statement),
`sigstore_support` (keyless, imported only when used). Heavy imports happen inside functions.
"""
