"""The settings that once made the framework handicap a technology stay as bench/parity.py found
them fixed (docs/performance.md, "Parity"). No timing: each test checks the deployed setting."""

from __future__ import annotations

import pytest

from seconetbench import preflight
from seconetbench.backends.netns import NetnsBackend
from seconetbench.spec import SetupSpec

pytestmark = pytest.mark.privileged


def test_userspace_ipsec_encrypts_with_openssl_not_strongswans_portable_aes(prefix, tools_available):
    """With kernel-libipsec, charon encrypts every ESP packet itself: it must take AES-GCM from
    the openssl plugin (AES-NI). strongSwan's own aes + gcm plugins made IPsec 6x slower."""
    setup = SetupSpec("multi", "bridge", "none", 2, tunnel="ipsec", hosts=2)
    reason = preflight.unsupported_reason(setup)
    if reason:
        pytest.skip(f"this machine cannot run ipsec: {reason}")
    backend = NetnsBackend(prefix)
    try:
        facts = backend.deploy(setup, verify=False).facts["tunnel"]
        if "kernel-libipsec" in facts["implementation"]:
            assert facts["esp_crypto_plugins"] == {"AES_GCM_16": "openssl"}, facts["esp_crypto_plugins"]
        else:
            assert facts["esp_crypto_plugins"] == {"AES_GCM_16": "kernel (XFRM)"}, facts["esp_crypto_plugins"]
    finally:
        backend.teardown()
