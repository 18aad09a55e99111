package deploy

import (
	"context"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const (
	devSAPassword = "Promocodes-dev-1" // the default in docker-compose.yml
	configPath    = "/etc/promocodes/config.yaml"
)

// loadCompose parses docker-compose.yml the way `docker compose` does
// (schema validation, interpolation, merge keys, normalisation), with env as
// the only environment: neither the caller's environment nor a .env file leaks in.
func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(env),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

func envValue(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	if p.Name != "promocodes" {
		t.Errorf("project name = %q, want promocodes (container names in docs/deploy.md depend on it)", p.Name)
	}
	want := []string{"api", "generator", "kafka", "kafka-init", "migrate", "shovel", "sqlserver", "sqlserver-init"}
	got := p.ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}

	type dep = map[string]string // service -> condition
	app := dep{"kafka": types.ServiceConditionHealthy, "kafka-init": types.ServiceConditionCompletedSuccessfully, "migrate": types.ServiceConditionCompletedSuccessfully}
	wantDeps := map[string]dep{
		"kafka":          {},
		"sqlserver":      {},
		"kafka-init":     {"kafka": types.ServiceConditionHealthy},
		"sqlserver-init": {"sqlserver": types.ServiceConditionHealthy},
		"migrate":        {"sqlserver-init": types.ServiceConditionCompletedSuccessfully},
		"api":            app,
		"generator":      app,
		"shovel":         app,
	}
	for name, deps := range wantDeps {
		s := service(t, p, name)
		gotDeps := dep{}
		for d, cfg := range s.DependsOn {
			gotDeps[d] = cfg.Condition
		}
		if len(gotDeps) != len(deps) {
			t.Errorf("%s depends_on = %v, want %v", name, gotDeps, deps)
			continue
		}
		for d, cond := range deps {
			if gotDeps[d] != cond {
				t.Errorf("%s depends_on %s: condition %q, want %q", name, d, gotDeps[d], cond)
			}
		}
	}

	longRunning := map[string]bool{"kafka": true, "sqlserver": true, "api": true, "generator": true, "shovel": true}
	for _, name := range want {
		s := service(t, p, name)
		wantRestart := "no"
		if longRunning[name] {
			wantRestart = types.RestartPolicyUnlessStopped
		}
		if s.Restart != wantRestart {
			t.Errorf("%s restart = %q, want %q", name, s.Restart, wantRestart)
		}
	}
}

func TestComposeApplicationServices(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t)
	roles := map[string]string{"migrate": "migrate", "api": "api", "generator": "generator", "shovel": "shovel"}
	var image string
	for name, role := range roles {
		s := service(t, p, name)
		if s.Build == nil || filepath.Clean(s.Build.Context) != root {
			t.Errorf("%s: build context = %+v, want the repository root (one Dockerfile)", name, s.Build)
		}
		if image == "" {
			image = s.Image
		}
		if s.Image == "" || s.Image != image {
			t.Errorf("%s: image = %q, want one shared image tag (%q)", name, s.Image, image)
		}
		wantCmd := []string{role, "--config", configPath}
		if !slices.Equal(s.Command, wantCmd) {
			t.Errorf("%s: command = %q, want %q", name, s.Command, wantCmd)
		}
		var mounted bool
		for _, v := range s.Volumes {
			if v.Target == configPath {
				mounted = true
				if v.Type != types.VolumeTypeBind || v.Source != filepath.Join(root, "configs", "compose.yaml") || !v.ReadOnly {
					t.Errorf("%s: config volume = %+v, want configs/compose.yaml bound read-only", name, v)
				}
			}
		}
		if !mounted {
			t.Errorf("%s: %s is not mounted", name, configPath)
		}
		for _, key := range []string{"PROMOCODES_DB_DSN", "PROMOCODES_CODES_SECRET", "PROMOCODES_AUTH_ADMINTOKENS", "PROMOCODES_AUTH_REDEEMTOKENS"} {
			if envValue(s, key) == "" {
				t.Errorf("%s: environment %s is not set", name, key)
			}
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) != 30*time.Second {
			t.Errorf("%s: stop_grace_period = %v, want 30s", name, s.StopGracePeriod)
		}
		if len(s.Entrypoint) != 0 {
			t.Errorf("%s: entrypoint overridden (%q); the image's /promocodes must run", name, s.Entrypoint)
		}
	}

	api := service(t, p, "api")
	var published bool
	for _, port := range api.Ports {
		if port.Target == 8080 && port.Published == "8080" {
			published = true
		}
	}
	if !published {
		t.Errorf("api ports = %+v, want 8080:8080", api.Ports)
	}
	gen := service(t, p, "generator")
	if gen.GetScale() != 2 {
		t.Errorf("generator replicas = %d, want 2", gen.GetScale())
	}
	if len(gen.Ports) != 0 {
		t.Errorf("generator publishes ports %+v; two replicas cannot share a host port", gen.Ports)
	}
	if slices.Contains(service(t, p, "shovel").Command, "--once") {
		t.Error("compose shovel runs --once; in compose it is long-running on shovel.interval")
	}
}

func TestComposeKafka(t *testing.T) {
	p := loadCompose(t)
	k := service(t, p, "kafka")
	if !regexp.MustCompile(`^apache/kafka:(3\.9\.\d+|4\.\d+\.\d+)$`).MatchString(k.Image) {
		t.Errorf("kafka image = %q, want the official apache/kafka 3.9.x or 4.x", k.Image)
	}
	wantEnv := map[string]string{
		"KAFKA_PROCESS_ROLES":                    "broker,controller",
		"KAFKA_CONTROLLER_LISTENER_NAMES":        "CONTROLLER",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
		"KAFKA_INTER_BROKER_LISTENER_NAME":       "PLAINTEXT",
	}
	for key, want := range wantEnv {
		if got := envValue(k, key); got != want {
			t.Errorf("kafka %s = %q, want %q", key, got, want)
		}
	}
	if envValue(k, "KAFKA_NODE_ID") == "" || envValue(k, "KAFKA_CONTROLLER_QUORUM_VOTERS") == "" {
		t.Error("kafka: KAFKA_NODE_ID and KAFKA_CONTROLLER_QUORUM_VOTERS must be set for KRaft")
	}
	adv := envValue(k, "KAFKA_ADVERTISED_LISTENERS")
	for _, l := range []string{"PLAINTEXT://kafka:9092", "EXTERNAL://localhost:29092"} {
		if !strings.Contains(adv, l) {
			t.Errorf("kafka KAFKA_ADVERTISED_LISTENERS = %q, want %s in it", adv, l)
		}
	}
	for _, l := range []string{"PLAINTEXT://:9092", "CONTROLLER://:9093", "EXTERNAL://:29092"} {
		if !strings.Contains(envValue(k, "KAFKA_LISTENERS"), l) {
			t.Errorf("kafka KAFKA_LISTENERS lacks %s", l)
		}
	}
	if id := envValue(k, "CLUSTER_ID"); !regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`).MatchString(id) {
		t.Errorf("kafka CLUSTER_ID = %q, want a base64url-encoded 16-byte UUID (22 characters)", id)
	}
	var external bool
	for _, port := range k.Ports {
		if port.Target == 29092 && port.Published == "29092" {
			external = true
		}
	}
	if !external {
		t.Errorf("kafka ports = %+v, want 29092:29092 for host tools", k.Ports)
	}
	if k.HealthCheck == nil || !strings.Contains(strings.Join(k.HealthCheck.Test, " "), "/opt/kafka/bin/kafka-broker-api-versions.sh") {
		t.Errorf("kafka healthcheck = %+v, want kafka-broker-api-versions.sh", k.HealthCheck)
	}

	// kafka-init creates exactly the configured topics with the configured partition count.
	cfg := parseAppConfig(t, "configs/compose.yaml", readFile(t, repoRoot(t), "configs", "compose.yaml"))
	kinit := service(t, p, "kafka-init")
	if kinit.Image != k.Image {
		t.Errorf("kafka-init image = %q, want the broker's %q", kinit.Image, k.Image)
	}
	script := strings.Join(kinit.Entrypoint, " ")
	t1 := cfg.Kafka.Topics
	// Each topic with the retention.ms the services create it with (and
	// check at start): kafka.retention for three, forever for dead.
	retention, err := time.ParseDuration(cfg.Kafka.Retention)
	if err != nil {
		t.Fatalf("kafka.retention %q: %v", cfg.Kafka.Retention, err)
	}
	ms := strconv.FormatInt(retention.Milliseconds(), 10)
	for topic, want := range map[string]string{t1.Batches: ms, t1.Retry: ms, t1.Error: ms, t1.Dead: "-1"} {
		if !regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(topic+":"+want) + `(\s|;|$)`).MatchString(script) {
			t.Errorf("kafka-init does not create topic %s with retention.ms=%s", topic, want)
		}
	}
	for _, want := range []string{"--if-not-exists", "--partitions " + strconv.Itoa(cfg.Kafka.Partitions), "--replication-factor " + strconv.Itoa(cfg.Kafka.ReplicationFactor), `"$topic"`, "--config retention.ms=$retention"} {
		if !strings.Contains(script, want) {
			t.Errorf("kafka-init script lacks %q:\n%s", want, script)
		}
	}
}

func TestComposeSQLServer(t *testing.T) {
	p := loadCompose(t)
	s := service(t, p, "sqlserver")
	m := regexp.MustCompile(`^mcr\.microsoft\.com/mssql/server:(\d{4})-CU(\d+)(-|$)`).FindStringSubmatch(s.Image)
	if m == nil {
		t.Fatalf("sqlserver image = %q, want mcr.microsoft.com/mssql/server:<year>-CU<n>...", s.Image)
	}
	year, _ := strconv.Atoi(m[1])
	cu, _ := strconv.Atoi(m[2])
	if year < 2022 || (year == 2022 && cu < 18) {
		t.Errorf("sqlserver image %q is older than 2022-CU18 (older TLS certificates are rejected by recent Go)", s.Image)
	}
	if envValue(s, "ACCEPT_EULA") != "Y" {
		t.Error("sqlserver: ACCEPT_EULA must be Y")
	}
	if s.HealthCheck == nil {
		t.Fatal("sqlserver has no healthcheck")
	}
	hc := strings.Join(s.HealthCheck.Test, " ")
	for _, want := range []string{"/opt/mssql-tools18/bin/sqlcmd", " -C ", "SELECT 1", "$MSSQL_SA_PASSWORD"} {
		if !strings.Contains(hc, want) {
			t.Errorf("sqlserver healthcheck %q lacks %q", hc, want)
		}
	}

	sinit := service(t, p, "sqlserver-init")
	script := strings.Join(sinit.Entrypoint, " ")
	for _, want := range []string{"/opt/mssql-tools18/bin/sqlcmd", " -C ", "-S sqlserver", "IF DB_ID(N'promocodes') IS NULL CREATE DATABASE [promocodes]"} {
		if !strings.Contains(script, want) {
			t.Errorf("sqlserver-init lacks %q:\n%s", want, script)
		}
	}

	// The dev default password must satisfy SQL Server's policy (8+ characters,
	// 3 of 4 classes) and be usable verbatim inside the DSN URL.
	pw := envValue(s, "MSSQL_SA_PASSWORD")
	if pw != devSAPassword {
		t.Errorf("sqlserver MSSQL_SA_PASSWORD default = %q, want %q", pw, devSAPassword)
	}
	classes := 0
	for _, class := range []string{"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789"} {
		if strings.ContainsAny(pw, class) {
			classes++
		}
	}
	if strings.IndexFunc(pw, func(r rune) bool {
		return !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", r)
	}) >= 0 {
		classes++
	}
	if len(pw) < 8 || classes < 3 {
		t.Errorf("dev SA password %q does not meet SQL Server's policy", pw)
	}
	if url.UserPassword("sa", pw).String() != "sa:"+pw {
		t.Errorf("dev SA password %q needs URL escaping, so the DSN would break", pw)
	}
	if envValue(sinit, "MSSQL_SA_PASSWORD") != pw {
		t.Error("sqlserver-init does not get the same SA password as sqlserver")
	}
}

// TestComposeSecretsFromEnvironment loads the file with the variables an
// operator would set and checks that they reach every service, and that the
// dev defaults are good enough for env: production to start.
func TestComposeSecretsFromEnvironment(t *testing.T) {
	checkDSN := func(t *testing.T, p *types.Project, password string) {
		t.Helper()
		for _, name := range []string{"migrate", "api", "generator", "shovel"} {
			dsn := envValue(service(t, p, name), "PROMOCODES_DB_DSN")
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatalf("%s DSN: %v", name, err)
			}
			pw, _ := u.User.Password()
			if u.Scheme != "sqlserver" || u.Host != "sqlserver:1433" || u.User.Username() != "sa" || pw != password || u.Query().Get("database") != "promocodes" {
				t.Errorf("%s DSN = %q, want sqlserver://sa:<password>@sqlserver:1433?database=promocodes", name, dsn)
			}
		}
	}

	t.Run("defaults", func(t *testing.T) {
		p := loadCompose(t)
		checkDSN(t, p, devSAPassword)
		api := service(t, p, "api")
		if n := len(envValue(api, "PROMOCODES_CODES_SECRET")); n < 32 {
			t.Errorf("dev codes secret is %d bytes; env production needs >= 32", n)
		}
	})
	t.Run("overridden", func(t *testing.T) {
		p := loadCompose(t,
			"MSSQL_SA_PASSWORD=Other-Passw0rd",
			"PROMOCODES_CODES_SECRET=0123456789abcdef0123456789abcdef-override",
			"PROMOCODES_ADMIN_TOKEN=adm-override",
			"PROMOCODES_REDEEM_TOKEN=red-override",
		)
		checkDSN(t, p, "Other-Passw0rd")
		if got := envValue(service(t, p, "sqlserver"), "MSSQL_SA_PASSWORD"); got != "Other-Passw0rd" {
			t.Errorf("sqlserver MSSQL_SA_PASSWORD = %q", got)
		}
		g := service(t, p, "generator")
		if envValue(g, "PROMOCODES_CODES_SECRET") != "0123456789abcdef0123456789abcdef-override" ||
			envValue(g, "PROMOCODES_AUTH_ADMINTOKENS") != "adm-override" ||
			envValue(g, "PROMOCODES_AUTH_REDEEMTOKENS") != "red-override" {
			t.Errorf("generator environment ignores the overrides: %v", g.Environment)
		}
		// The healthcheck reads the password inside the container, not at parse time.
		if hc := strings.Join(service(t, p, "sqlserver").HealthCheck.Test, " "); strings.Contains(hc, "Other-Passw0rd") {
			t.Errorf("sqlserver healthcheck has the password interpolated: %q", hc)
		}
	})
}
