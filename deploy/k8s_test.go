package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	secretName    = "promocodes-secrets"
	configMapName = "promocodes-config"
	imageName     = "promocodes" // overlays set the real image with kustomize images
)

// scaledObject mirrors the fields of KEDA's keda.sh/v1alpha1 ScaledObject that
// generator-scaledobject.yaml uses; strict decoding rejects anything else, so a
// misspelt field cannot be silently dropped by KEDA.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Name     string            `json:"name,omitempty"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// kustomization mirrors the kustomize fields kustomization.yaml uses.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// manifests is every object under deploy/k8s, each decoded strictly into its type.
type manifests struct {
	files        []string // resource files, relative to deploy/k8s, without kustomization.yaml
	kustom       kustomization
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	jobs         map[string]*batchv1.Job
	cronJobs     map[string]*batchv1.CronJob
	pdbs         map[string]*policyv1.PodDisruptionBudget
	scaled       map[string]*scaledObject
	namespaced   []string // objects that set metadata.namespace
	objectsCount int
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeInto strictly decodes doc into a new T and records it under its name.
func decodeInto[T any](t *testing.T, file string, doc []byte, into map[string]*T, meta func(*T) *metav1.ObjectMeta) {
	t.Helper()
	obj := new(T)
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Errorf("%s: strict decode into %T: %v", file, *obj, err)
		return
	}
	m := meta(obj)
	if m.Name == "" {
		t.Errorf("%s: object without metadata.name", file)
		return
	}
	if _, dup := into[m.Name]; dup {
		t.Errorf("%s: duplicate %T %s", file, *obj, m.Name)
	}
	into[m.Name] = obj
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy", "k8s")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		jobs:        map[string]*batchv1.Job{},
		cronJobs:    map[string]*batchv1.CronJob{},
		pdbs:        map[string]*policyv1.PodDisruptionBudget{},
		scaled:      map[string]*scaledObject{},
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			t.Errorf("deploy/k8s/%s: unexpected directory (overlays belong outside the base)", name)
			continue
		}
		if ext := filepath.Ext(name); ext != ".yaml" && ext != ".yml" {
			t.Errorf("deploy/k8s/%s: not a YAML manifest", name)
			continue
		}
		data := readFile(t, dir, name)
		if name == "kustomization.yaml" {
			if err := yaml.UnmarshalStrict(data, &m.kustom); err != nil {
				t.Fatalf("kustomization.yaml: strict decode: %v", err)
			}
			continue
		}
		m.files = append(m.files, name)
		for _, doc := range docSeparator.Split(string(data), -1) {
			var head struct {
				APIVersion string            `json:"apiVersion"`
				Kind       string            `json:"kind"`
				Metadata   metav1.ObjectMeta `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if head.APIVersion == "" && head.Kind == "" {
				if strings.TrimSpace(stripComments(doc)) != "" {
					t.Errorf("%s: document without apiVersion/kind", name)
				}
				continue
			}
			m.objectsCount++
			if head.Metadata.Namespace != "" {
				m.namespaced = append(m.namespaced, name)
			}
			b := []byte(doc)
			switch head.APIVersion + "/" + head.Kind {
			case "apps/v1/Deployment":
				decodeInto(t, name, b, m.deployments, func(o *appsv1.Deployment) *metav1.ObjectMeta { return &o.ObjectMeta })
			case "v1/Service":
				decodeInto(t, name, b, m.services, func(o *corev1.Service) *metav1.ObjectMeta { return &o.ObjectMeta })
			case "v1/ConfigMap":
				decodeInto(t, name, b, m.configMaps, func(o *corev1.ConfigMap) *metav1.ObjectMeta { return &o.ObjectMeta })
			case "v1/Secret":
				decodeInto(t, name, b, m.secrets, func(o *corev1.Secret) *metav1.ObjectMeta { return &o.ObjectMeta })
			case "batch/v1/Job":
				decodeInto(t, name, b, m.jobs, func(o *batchv1.Job) *metav1.ObjectMeta { return &o.ObjectMeta })
			case "batch/v1/CronJob":
				decodeInto(t, name, b, m.cronJobs, func(o *batchv1.CronJob) *metav1.ObjectMeta { return &o.ObjectMeta })
			case "policy/v1/PodDisruptionBudget":
				decodeInto(t, name, b, m.pdbs, func(o *policyv1.PodDisruptionBudget) *metav1.ObjectMeta { return &o.ObjectMeta })
			case "keda.sh/v1alpha1/ScaledObject":
				decodeInto(t, name, b, m.scaled, func(o *scaledObject) *metav1.ObjectMeta { return &o.Metadata })
			default:
				t.Errorf("%s: %s %s is not a kind this test knows how to check", name, head.APIVersion, head.Kind)
			}
		}
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func TestK8sManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	if t.Failed() {
		t.FailNow()
	}
	want := map[string][]string{
		"Deployment":          {"promocodes-api", "promocodes-generator"},
		"Service":             {"promocodes-api"},
		"ConfigMap":           {configMapName},
		"Secret":              {secretName},
		"Job":                 {"promocodes-migrate"},
		"CronJob":             {"promocodes-purge", "promocodes-shovel"},
		"PodDisruptionBudget": {"promocodes-api", "promocodes-generator"},
		"ScaledObject":        {"promocodes-generator"},
	}
	got := map[string][]string{
		"Deployment":          sortedKeys(m.deployments),
		"Service":             sortedKeys(m.services),
		"ConfigMap":           sortedKeys(m.configMaps),
		"Secret":              sortedKeys(m.secrets),
		"Job":                 sortedKeys(m.jobs),
		"CronJob":             sortedKeys(m.cronJobs),
		"PodDisruptionBudget": sortedKeys(m.pdbs),
		"ScaledObject":        sortedKeys(m.scaled),
	}
	for kind, names := range want {
		if !slices.Equal(got[kind], names) {
			t.Errorf("%s objects = %v, want %v", kind, got[kind], names)
		}
	}
	if len(m.namespaced) > 0 {
		t.Errorf("the base must be namespace-agnostic; metadata.namespace set in %v", m.namespaced)
	}
}

func TestK8sKustomizationListsEveryFile(t *testing.T) {
	m := loadManifests(t)
	k := m.kustom
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", k.APIVersion, k.Kind)
	}
	listed := slices.Clone(k.Resources)
	slices.Sort(listed)
	if n := len(slices.Compact(slices.Clone(listed))); n != len(listed) {
		t.Errorf("kustomization.yaml lists a resource twice: %v", k.Resources)
	}
	files := slices.Clone(m.files)
	slices.Sort(files)
	for _, f := range files {
		if !slices.Contains(listed, f) {
			t.Errorf("deploy/k8s/%s is not listed in kustomization.yaml resources", f)
		}
	}
	for _, r := range listed {
		if !slices.Contains(files, r) {
			t.Errorf("kustomization.yaml lists %s, which is not a file in deploy/k8s", r)
		}
	}
}

// podChecks are the rules every promocodes pod follows, long-running or not.
func checkPod(t *testing.T, m *manifests, what string, spec corev1.PodSpec, role string, longRunning bool) {
	t.Helper()
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds != 60 {
		t.Errorf("%s: terminationGracePeriodSeconds = %s, want 60", what, show(spec.TerminationGracePeriodSeconds))
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken should be false (the pods never call the Kubernetes API)", what)
	}
	podSC := spec.SecurityContext
	if podSC == nil || podSC.RunAsNonRoot == nil || !*podSC.RunAsNonRoot {
		t.Errorf("%s: pod securityContext.runAsNonRoot is not true", what)
	}
	if podSC != nil && (podSC.RunAsUser == nil || *podSC.RunAsUser == 0) {
		t.Errorf("%s: pod securityContext.runAsUser must be a non-zero uid (the image's 65532)", what)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", what, len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image != imageName {
		t.Errorf("%s: image = %q, want %q (the name overlays rewrite)", what, c.Image, imageName)
	}
	if len(c.Command) != 0 {
		t.Errorf("%s: command overrides the image's /promocodes entrypoint: %q", what, c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != role {
		t.Errorf("%s: args = %q, want subcommand %q first", what, c.Args, role)
	}
	if i := slices.Index(c.Args, "--config"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != configPath {
		t.Errorf("%s: args = %q, want --config %s", what, c.Args, configPath)
	}

	// Config: the ConfigMap's config.yaml at /etc/promocodes/config.yaml.
	var configMounted bool
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			t.Errorf("%s: volumeMount %s has no volume", what, vm.Name)
			continue
		}
		if v.ConfigMap == nil {
			continue
		}
		if v.ConfigMap.Name != configMapName {
			t.Errorf("%s: mounts ConfigMap %s, want %s", what, v.ConfigMap.Name, configMapName)
		}
		if _, ok := m.configMaps[configMapName].Data["config.yaml"]; !ok {
			t.Errorf("%s: ConfigMap %s has no config.yaml", what, configMapName)
		}
		file := "config.yaml"
		for _, item := range v.ConfigMap.Items {
			if item.Key == "config.yaml" {
				file = item.Path
			}
		}
		mountedAt := filepath.Join(vm.MountPath, file)
		if vm.SubPath != "" {
			mountedAt = vm.MountPath
		}
		if mountedAt == configPath && vm.ReadOnly {
			configMounted = true
		}
	}
	if !configMounted {
		t.Errorf("%s: ConfigMap %s is not mounted read-only at %s", what, configMapName, configPath)
	}

	// Secrets: referenced from the Secret, never inlined.
	var fromSecret bool
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil && ef.SecretRef.Name == secretName {
			fromSecret = true
		}
	}
	if !fromSecret {
		t.Errorf("%s: envFrom does not reference Secret %s", what, secretName)
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "PROMOCODES_") && e.ValueFrom == nil {
			t.Errorf("%s: env %s has an inline value; configuration belongs in the ConfigMap, secrets in the Secret", what, e.Name)
		}
	}

	// Resources: requests and limits for CPU and memory.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
			t.Errorf("%s: no %s request", what, r)
		}
		if q, ok := c.Resources.Limits[r]; !ok || q.IsZero() {
			t.Errorf("%s: no %s limit", what, r)
		}
		if req, lim := c.Resources.Requests[r], c.Resources.Limits[r]; req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s exceeds limit %s", what, r, req.String(), lim.String())
		}
	}

	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: container securityContext must set readOnlyRootFilesystem, allowPrivilegeEscalation: false, drop ALL", what)
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	probe := func(kind string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", what, kind)
			return
		}
		if p.HTTPGet.Path != path {
			t.Errorf("%s: %s probe path = %q, want %q", what, kind, p.HTTPGet.Path, path)
		}
		port := p.HTTPGet.Port
		if port.StrVal != "" {
			if ports[port.StrVal] != 8080 {
				t.Errorf("%s: %s probe port %q is not a container port on 8080", what, kind, port.StrVal)
			}
		} else if port.IntVal != 8080 {
			t.Errorf("%s: %s probe port = %d, want 8080 (http.addr)", what, kind, port.IntVal)
		}
	}
	if longRunning {
		probe("liveness", c.LivenessProbe, "/healthz")
		probe("readiness", c.ReadinessProbe, "/readyz")
	} else {
		if spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy = %q, want Never (the Job's backoffLimit retries)", what, spec.RestartPolicy)
		}
	}
}

func podLabels(d *appsv1.Deployment) labels.Set { return labels.Set(d.Spec.Template.Labels) }

func TestK8sDeployments(t *testing.T) {
	m := loadManifests(t)
	for _, name := range []string{"promocodes-api", "promocodes-generator"} {
		if m.deployments[name] == nil {
			t.Fatalf("Deployment %s missing", name)
		}
	}
	for name, d := range m.deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(podLabels(d)) {
			t.Errorf("Deployment %s: selector %v does not match its pod labels %v (%v)", name, d.Spec.Selector, d.Spec.Template.Labels, err)
		}
	}

	api := m.deployments["promocodes-api"]
	checkPod(t, m, "Deployment promocodes-api", api.Spec.Template.Spec, "api", true)
	if api.Spec.Replicas == nil || *api.Spec.Replicas != 2 {
		t.Errorf("api replicas = %s, want 2", show(api.Spec.Replicas))
	}

	gen := m.deployments["promocodes-generator"]
	checkPod(t, m, "Deployment promocodes-generator", gen.Spec.Template.Spec, "generator", true)
	if gen.Spec.Replicas != nil {
		t.Errorf("generator replicas = %d; leave it unset so that KEDA owns it", *gen.Spec.Replicas)
	}
	res := gen.Spec.Template.Spec.Containers[0].Resources
	if req, lim := res.Requests[corev1.ResourceMemory], res.Limits[corev1.ResourceMemory]; req.Cmp(resource.MustParse("128Mi")) != 0 || lim.Cmp(resource.MustParse("256Mi")) != 0 {
		t.Errorf("generator memory = request %s / limit %s, want 128Mi / 256Mi", req.String(), lim.String())
	}

	// Each Service and PDB selects the pods of exactly the Deployment it is for.
	selects := func(sel labels.Selector) []string {
		var names []string
		for name, d := range m.deployments {
			if sel.Matches(podLabels(d)) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		return names
	}
	svc := m.services["promocodes-api"]
	if svc == nil {
		t.Fatal("Service promocodes-api missing")
	}
	if got := selects(labels.SelectorFromSet(svc.Spec.Selector)); !slices.Equal(got, []string{"promocodes-api"}) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service promocodes-api selects %v, want [promocodes-api]", got)
	}
	var targeted bool
	for _, p := range svc.Spec.Ports {
		for _, cp := range api.Spec.Template.Spec.Containers[0].Ports {
			if (p.TargetPort.StrVal != "" && p.TargetPort.StrVal == cp.Name) || (p.TargetPort.StrVal == "" && p.TargetPort.IntVal == cp.ContainerPort) {
				targeted = cp.ContainerPort == 8080
			}
		}
	}
	if !targeted {
		t.Errorf("Service promocodes-api ports %+v do not target the api container's 8080", svc.Spec.Ports)
	}
	for name, pdb := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if got := selects(sel); !slices.Equal(got, []string{name}) {
			t.Errorf("PodDisruptionBudget %s selects %v, want [%s]", name, got, name)
		}
		if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
			t.Errorf("PodDisruptionBudget %s sets neither minAvailable nor maxUnavailable", name)
		}
	}
}

func TestK8sShovelCronJob(t *testing.T) {
	m := loadManifests(t)
	cj := m.cronJobs["promocodes-shovel"]
	if cj == nil {
		t.Fatal("CronJob promocodes-shovel missing")
	}
	if cj.Spec.Schedule != "*/5 * * * *" {
		t.Errorf("schedule = %q, want */5 * * * *", cj.Spec.Schedule)
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy = %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	job := cj.Spec.JobTemplate.Spec
	if job.BackoffLimit == nil {
		t.Error("jobTemplate.spec.backoffLimit is not set")
	}
	if job.ActiveDeadlineSeconds == nil || *job.ActiveDeadlineSeconds <= 0 || *job.ActiveDeadlineSeconds >= 300 {
		t.Errorf("activeDeadlineSeconds = %s, want set and shorter than the 5-minute schedule", show(job.ActiveDeadlineSeconds))
	}
	checkPod(t, m, "CronJob promocodes-shovel", job.Template.Spec, "shovel", false)
	args := job.Template.Spec.Containers[0].Args
	if len(args) < 2 || args[0] != "shovel" || args[1] != "--once" {
		t.Errorf("shovel args = %q, want shovel --once ...", args)
	}
}

func TestK8sPurgeCronJob(t *testing.T) {
	m := loadManifests(t)
	cj := m.cronJobs["promocodes-purge"]
	if cj == nil {
		t.Fatal("CronJob promocodes-purge missing")
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy = %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	if f := strings.Fields(cj.Spec.Schedule); len(f) != 5 || f[0] == "*" || f[1] == "*" {
		t.Errorf("schedule = %q, want a fixed daily time", cj.Spec.Schedule)
	}
	job := cj.Spec.JobTemplate.Spec
	if job.BackoffLimit == nil || job.ActiveDeadlineSeconds == nil || *job.ActiveDeadlineSeconds <= 0 ||
		*job.ActiveDeadlineSeconds > 24*3600 {
		t.Errorf("backoffLimit %s, activeDeadlineSeconds %s: want both set, the deadline under a day",
			show(job.BackoffLimit), show(job.ActiveDeadlineSeconds))
	}
	checkPod(t, m, "CronJob promocodes-purge", job.Template.Spec, "purge", false)
	args := job.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--ended-more-than") && !slices.Contains(args, "--expired-before") {
		t.Errorf("purge args = %q, want --ended-more-than or --expired-before", args)
	}
	if slices.Contains(args, "--dry-run") {
		t.Errorf("purge args = %q: a dry run would never purge", args)
	}
	// The command and its flags exist in this binary.
	root := filepath.Join(repoRoot(t), "cmd", "promocodes", "lifecycle.go")
	src, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--") && a != "--config" && !strings.Contains(string(src), `"`+strings.TrimPrefix(a, "--")+`"`) {
			t.Errorf("purge flag %s is not defined in cmd/promocodes/lifecycle.go", a)
		}
	}
}

func TestK8sMigrateJob(t *testing.T) {
	m := loadManifests(t)
	job := m.jobs["promocodes-migrate"]
	if job == nil {
		t.Fatal("Job promocodes-migrate missing")
	}
	if job.Spec.BackoffLimit == nil || job.Spec.ActiveDeadlineSeconds == nil {
		t.Error("migrate Job needs backoffLimit and activeDeadlineSeconds")
	}
	checkPod(t, m, "Job promocodes-migrate", job.Spec.Template.Spec, "migrate", false)
}

func TestK8sConfigAndSecret(t *testing.T) {
	m := loadManifests(t)
	cm := m.configMaps[configMapName]
	if cm == nil {
		t.Fatalf("ConfigMap %s missing", configMapName)
	}
	parseAppConfig(t, "ConfigMap "+configMapName+" config.yaml", []byte(cm.Data["config.yaml"]))
	if len(cm.Data) != 1 || len(cm.BinaryData) != 0 {
		t.Errorf("ConfigMap %s has keys other than config.yaml", configMapName)
	}

	s := m.secrets[secretName]
	if s == nil {
		t.Fatalf("Secret %s missing", secretName)
	}
	keys := []string{"PROMOCODES_AUTH_ADMINTOKENS", "PROMOCODES_AUTH_REDEEMTOKENS", "PROMOCODES_CODES_SECRET", "PROMOCODES_DB_DSN"}
	if got := sortedKeys(s.StringData); !slices.Equal(got, keys) || len(s.Data) != 0 {
		t.Errorf("Secret stringData keys = %v (data %d keys), want exactly %v", got, len(s.Data), keys)
	}
	for k, v := range s.StringData {
		if !strings.Contains(v, "REPLACE-ME") {
			t.Errorf("Secret %s: %s = %q is not a REPLACE-ME placeholder; real values must not be committed", secretName, k, v)
		}
	}
	// Fail closed: with the template's placeholder, env production refuses to start.
	if n := len(s.StringData["PROMOCODES_CODES_SECRET"]); n >= 32 {
		t.Errorf("placeholder codes secret is %d bytes; keep it < 32 so an unreplaced template cannot start", n)
	}
}

func TestK8sScaledObject(t *testing.T) {
	m := loadManifests(t)
	so := m.scaled["promocodes-generator"]
	if so == nil {
		t.Fatal("ScaledObject promocodes-generator missing")
	}
	cfg := parseAppConfig(t, "ConfigMap config.yaml", []byte(m.configMaps[configMapName].Data["config.yaml"]))
	if so.Spec.ScaleTargetRef.Name != "promocodes-generator" || m.deployments[so.Spec.ScaleTargetRef.Name] == nil {
		t.Errorf("scaleTargetRef = %+v, want the generator Deployment", so.Spec.ScaleTargetRef)
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount != 1 {
		t.Errorf("minReplicaCount = %s, want 1", show(so.Spec.MinReplicaCount))
	}
	if so.Spec.MaxReplicaCount == nil || int(*so.Spec.MaxReplicaCount) != cfg.Kafka.Partitions {
		t.Errorf("maxReplicaCount = %s, want kafka.partitions = %d (more replicas than partitions idle)", show(so.Spec.MaxReplicaCount), cfg.Kafka.Partitions)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
		t.Fatalf("triggers = %+v, want one kafka trigger", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	wantMD := map[string]string{
		"bootstrapServers": strings.Join(cfg.Kafka.Brokers, ","),
		"consumerGroup":    cfg.Generator.GroupID,
		"topic":            cfg.Kafka.Topics.Batches,
	}
	for k, want := range wantMD {
		if md[k] != want {
			t.Errorf("kafka trigger %s = %q, want %q (from the ConfigMap)", k, md[k], want)
		}
	}
	if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n <= 0 {
		t.Errorf("kafka trigger lagThreshold = %q, want a positive integer string", md["lagThreshold"])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// show prints an optional number for a failure message.
func show[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
