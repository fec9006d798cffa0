"""Which Sigstore deployment to trust: a ClientTrustConfig file or an embedded instance directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .signing import load_trust_config


@dataclass(frozen=True)
class TrustSelection:
    """The trust config to use and, for the embedded instance, its directory."""

    trust_config_path: Path
    instance_dir: Path | None = None

    def load(self) -> Any:
        return load_trust_config(self.trust_config_path)

    def default_issuer(self) -> str | None:
        """The embedded instance's own issuer (None for other deployments)."""
        if self.instance_dir is None:
            return None
        from .instance.state import InstanceState

        return InstanceState.load(self.instance_dir).issuer


def select_trust(trust_config: Path | None, instance: Path | None) -> TrustSelection:
    """Exactly one of --trust-config FILE or --instance DIR."""
    if (trust_config is None) == (instance is None):
        raise UsageError("give exactly one of --trust-config FILE or --instance DIR")
    if instance is not None:
        from .instance.state import TRUST_CONFIG, InstanceState

        InstanceState.load(instance)  # checks keys and permissions
        return TrustSelection(Path(instance) / TRUST_CONFIG, Path(instance))
    assert trust_config is not None
    if str(trust_config) not in ("public-good", "staging") and not Path(trust_config).is_file():
        from .errors import InvalidInput

        raise InvalidInput(
            f"{trust_config}: trust config not found (a file, public-good or staging)", path=str(trust_config)
        )
    return TrustSelection(Path(trust_config))
