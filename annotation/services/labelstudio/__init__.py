"""Human verification in Label Studio, through label-studio-sdk only: `client` (connection, listings,
webhook registration), `config` (labeling configs), `push` (work sets as tasks), `adjudication` (the
adjudication project), `mirror` (annotations held locally, label sets rebuilt from them) and `sync` (the
reconciling sync and webhook deliveries, by project mode)."""
