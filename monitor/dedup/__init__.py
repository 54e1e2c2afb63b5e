"""Recognising what is already known: the same text, edited or cut.

    fingerprint.py  normalized text, its hash, shingles, MinHash band keys (pure)
    verdict.py      two fingerprints compared; candidates ranked (pure)
    seeds.py        seed files read into documents (pure)
    index.py        the near-duplicate index in the store; lookups; the seed load
"""
