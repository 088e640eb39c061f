"""An independent Python client of the NeuroShard PoNW ledger, written from specs/ponw-ledger/README.md alone
(stdlib only): keys and addresses, canonical message encoding, signing and verification, certificates, the
state transition of §7 and the state hash of §7.2.

    from neuroshard_ledger import Chain, Wallet, State, parse_certificate
"""
from .ledger import *  # noqa: F401,F403
from .ledger import __all__  # noqa: F401
