// Package deploy holds no code: it is where the deployment artefacts are
// checked. Its tests parse docker-compose.yml with the Compose reference parser
// (compose-go), decode every Kubernetes manifest under deploy/k8s strictly into
// its API type, and check the shipped configuration files, so that a typo in a
// file that cannot be run on a machine without Docker or a cluster still fails
// `go test ./...`. The tests read files only: no network, no Docker engine.
package deploy
