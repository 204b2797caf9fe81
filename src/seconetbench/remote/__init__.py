"""Reaching the hosts of the ssh backend: one OpenSSH master connection per host (ssh.py)."""
