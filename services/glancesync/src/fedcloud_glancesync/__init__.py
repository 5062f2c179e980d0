"""Multi-region and multi-cloud image sync: GlanceSync's algorithm, done safely.

A master region's images are copied, by name, to every target region; data
streams from the master's Glance API (read once, checked against its
SHA-512), never from Glance's disk; regions sync in parallel.
"""
