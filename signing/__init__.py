"""Crypto and evidence core of Wangqian (网签): canonical contract documents, the platform CA
with per-signing event certificates and company seal certificates, detached CMS signatures,
hash-chained evidence bundles that verify offline against the root certificate alone, QR
scene strings and images, and one-time-code policy. A pure library: no HTTP, no database,
imports nothing else of ours, and every function that needs the time takes ``now``.
"""
