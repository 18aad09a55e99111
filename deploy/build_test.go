package deploy

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// No Docker engine is needed to catch the mistakes that matter in these files;
// `docker build .` itself runs in .github/workflows/ci.yml.

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	df := string(readFile(t, root, "Dockerfile"))
	froms := regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) != 2 {
		t.Fatalf("Dockerfile has %d stages, want 2 (build, final)", len(froms))
	}
	if !regexp.MustCompile(`^golang:1\.26(\.\d+)?(-bookworm)?$`).MatchString(froms[0][1]) {
		t.Errorf("build stage FROM %s, want golang:1.26[-bookworm]", froms[0][1])
	}
	if final := froms[1][1]; final != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot", final)
	}
	// The build instruction, continuation lines joined.
	var build string
	for _, instr := range strings.Split(strings.ReplaceAll(df, "\\\n", " "), "\n") {
		if strings.HasPrefix(instr, "RUN ") && strings.Contains(instr, "go build") {
			build = instr
		}
	}
	for _, want := range []string{
		"--mount=type=cache,target=/go/pkg/mod",
		" CGO_ENABLED=0 ",
		`go build -trimpath -ldflags="-s -w" -o /out/promocodes ./cmd/promocodes`,
	} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile go build instruction lacks %q: %q", want, build)
		}
	}
	for _, want := range []string{
		"COPY --from=build /out/promocodes /promocodes",
		`ENTRYPOINT ["/promocodes"]`,
		"EXPOSE 8080",
		"USER 65532:65532",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?mi)^\s*(ENV|ARG)\s+\S*(SECRET|PASSWORD|TOKEN|DSN)`).MatchString(df) {
		t.Error("Dockerfile declares a secret-looking ENV/ARG; secrets come from the runtime environment")
	}

	ignore := strings.Fields(string(readFile(t, root, ".dockerignore")))
	for _, want := range []string{".git", "bin/", "data/", ".env"} {
		if !slices.Contains(ignore, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}

func TestCIWorkflow(t *testing.T) {
	root := repoRoot(t)
	var wf struct {
		Jobs map[string]struct {
			Services map[string]struct {
				Image string `json:"image"`
			} `json:"services"`
			Env   map[string]string `json:"env"`
			Steps []struct {
				Uses string            `json:"uses"`
				Run  string            `json:"run"`
				With map[string]string `json:"with"`
				Env  map[string]string `json:"env"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	if err := yaml.Unmarshal(readFile(t, root, ".github", "workflows", "ci.yml"), &wf); err != nil {
		t.Fatalf("ci.yml: %v", err)
	}
	var postgres, setupGo, makeTest, integrationWithKafka, composeConfig, dockerBuild bool
	for _, job := range wf.Jobs {
		_, ok := job.Services["postgres"]
		postgres = postgres || ok
		for _, s := range job.Steps {
			if strings.HasPrefix(s.Uses, "actions/setup-go@") && (s.With["go-version-file"] == "go.mod" || strings.HasPrefix(s.With["go-version"], "1.26")) {
				setupGo = true
			}
			for _, line := range strings.Split(s.Run, "\n") {
				switch strings.TrimSpace(line) {
				case "make test":
					makeTest = true
				case "make test-integration":
					integrationWithKafka = integrationWithKafka || s.Env["PROMOCODES_TEST_KAFKA"] == "docker" || job.Env["PROMOCODES_TEST_KAFKA"] == "docker"
				}
				composeConfig = composeConfig || strings.HasPrefix(strings.TrimSpace(line), "docker compose config")
				dockerBuild = dockerBuild || regexp.MustCompile(`^docker build( .*)? \.$`).MatchString(strings.TrimSpace(line))
			}
		}
	}
	for what, ok := range map[string]bool{
		"a postgres service container":  postgres,
		"actions/setup-go with Go 1.26": setupGo,
		"make test":                     makeTest,
		"make test-integration with PROMOCODES_TEST_KAFKA=docker": integrationWithKafka,
		"docker compose config":                                   composeConfig,
		"docker build .":                                          dockerBuild,
	} {
		if !ok {
			t.Errorf("ci.yml has no step for %s", what)
		}
	}
}
