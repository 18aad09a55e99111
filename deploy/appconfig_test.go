package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/promocodes/promocodes/pkg/app"
	"github.com/promocodes/promocodes/pkg/config"
)

// loadAppConfig reads a config file plus PROMOCODES_* environment into
// app.Config with pkg/config, exactly as cmd/promocodes does.
func loadAppConfig(t *testing.T, file string, env map[string]string) (app.Config, error) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PROMOCODES_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	return config.Load(app.Defaults(), file, nil)
}

// operatorSecrets are values an operator would put in the Secret.
var operatorSecrets = map[string]string{
	"PROMOCODES_CODES_SECRET":      "k4Yp0S6m2vQx9Lr3Tz8Wn1Bc7Hd5Jf0Ge2Ua4Io6",
	"PROMOCODES_DB_DSN":            "sqlserver://promocodes:S3cret-pass@db.example:1433?database=promocodes&encrypt=true",
	"PROMOCODES_AUTH_ADMINTOKENS":  "admin-token-0123456789,admin-token-next-0123456789",
	"PROMOCODES_AUTH_REDEEMTOKENS": "redeem-token-0123456789",
}

// TestComposeStackConfigIsAccepted: configs/compose.yaml plus the environment
// docker-compose.yml gives the api service is a valid production configuration.
func TestComposeStackConfigIsAccepted(t *testing.T) {
	root := repoRoot(t)
	api := service(t, loadCompose(t), "api")
	env := map[string]string{}
	for k, v := range api.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	cfg, err := loadAppConfig(t, filepath.Join(root, "configs", "compose.yaml"), env)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the compose stack's configuration is rejected:\n%v", err)
	}
	if cfg.Env != "production" || cfg.DB.Driver != "sqlserver" || len(cfg.Auth.AdminTokens) != 1 {
		t.Errorf("loaded %+v", cfg)
	}
}

func TestProductionExampleIsAcceptedWithSecrets(t *testing.T) {
	cfg, err := loadAppConfig(t, filepath.Join(repoRoot(t), "configs", "production.example.yaml"), operatorSecrets)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("configs/production.example.yaml with secrets from the environment is rejected:\n%v", err)
	}
	if len(cfg.Auth.AdminTokens) != 2 {
		t.Errorf("auth.adminTokens = %q, want the two comma-separated tokens", cfg.Auth.AdminTokens)
	}
}

// TestK8sConfigMapAndSecret: the ConfigMap with real secrets is valid; with the
// Secret template's placeholders the application refuses to start.
func TestK8sConfigMapAndSecret(t *testing.T) {
	m := loadManifests(t)
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(m.configMaps[configMapName].Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := loadAppConfig(t, file, operatorSecrets)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("ConfigMap config.yaml with operator secrets is rejected:\n%v", err)
	}

	cfg, err = loadAppConfig(t, file, m.secrets[secretName].StringData)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "codes.secret") {
		t.Errorf("with the Secret template's placeholders Validate() = %v; want a codes.secret refusal (fail closed)", err)
	}
}
