// The experiments the issues name: the ones with Istio YAML (mesh/experiments/<name>.yaml) and the local-only
// ones (a hypothesis file only, run against the local stack's processes). Both test files check against this.
export const CLUSTER_EXPERIMENTS = [
  "payment-delay",
  "payment-abort",
  "catalog-abort",
  "retries-recover",
  "circuit-breaker",
  "outlier-ejection",
  "canary-50",
  "canary-100",
  "mtls-plaintext",
];
export const LOCAL_EXPERIMENTS = ["kill-payment", "kill-orders", "db-outage", "slow-payment"];
