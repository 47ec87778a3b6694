//! The user's API: Istio `networking.istio.io/v1` resources loaded from YAML with provenance.
