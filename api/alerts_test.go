package api_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/walship/walship/api"
	"github.com/walship/walship/archive"
	"github.com/walship/walship/master"
	"github.com/walship/walship/snapshot"
)

// ruleFile is Prometheus' rule file format (rule_files), as much of it as
// alerting rules use.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// series are the metrics live nodes serve: each name, and each name's
// label values.
type series struct {
	names  map[string]bool
	labels map[string]map[string]bool // "name label" → values
}

// scrapeAll parses GET /metrics of every node in Prometheus' text format.
func scrapeAll(tb testing.TB, urls ...string) series {
	tb.Helper()
	s := series{names: map[string]bool{}, labels: map[string]map[string]bool{}}
	for _, u := range urls {
		status, _, body := do(tb, http.MethodGet, u+"/metrics", nil)
		if status != http.StatusOK {
			tb.Fatalf("%s/metrics: %d", u, status)
		}
		p := expfmt.NewTextParser(model.LegacyValidation)
		families, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			tb.Fatalf("%s/metrics is not in Prometheus' text format: %v", u, err)
		}
		for name, f := range families {
			s.names[name] = true
			if len(f.GetMetric()) > 0 && f.GetMetric()[0].GetHistogram() != nil {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					s.names[name+suffix] = true
				}
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					k := name + " " + l.GetName()
					if s.labels[k] == nil {
						s.labels[k] = map[string]bool{}
					}
					s.labels[k][l.GetValue()] = true
				}
			}
		}
	}
	return s
}

var (
	// selectorRe finds a metric name with label matchers.
	selectorRe = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	// matcherRe finds one equality or regexp matcher.
	matcherRe = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|=)\s*"([^"]*)"`)
	// grouping finds the label lists of by, without, on, ignoring,
	// group_left and group_right.
	groupingRe = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// identRe finds identifiers that do not start inside a number.
	identRe = regexp.MustCompile(`(?:^|[^a-zA-Z0-9_:.])([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	// promqlWords are PromQL's keywords, which are no metrics.
	promqlWords = []string{"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring", "group_left", "group_right"}
)

// metricsOf returns the metric names a PromQL expression reads, and its
// label matchers as "name label" → values asked for.
func metricsOf(expr string) ([]string, map[string][]string) {
	matchers := map[string][]string{}
	for _, sel := range selectorRe.FindAllStringSubmatch(expr, -1) {
		for _, m := range matcherRe.FindAllStringSubmatch(sel[2], -1) {
			vals := []string{m[3]}
			if m[2] == "=~" {
				vals = strings.Split(m[3], "|")
			}
			matchers[sel[1]+" "+m[1]] = append(matchers[sel[1]+" "+m[1]], vals...)
		}
	}
	e := regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`).ReplaceAllString(expr, " ")
	e = groupingRe.ReplaceAllString(e, " ")
	var names []string
	for _, m := range identRe.FindAllStringSubmatchIndex(e, -1) {
		name, rest := e[m[2]:m[3]], strings.TrimLeft(e[m[3]:], " \t\n")
		if strings.HasPrefix(rest, "(") || slices.Contains(promqlWords, strings.ToLower(name)) {
			continue // a function, or a keyword
		}
		names = append(names, name)
	}
	return names, matchers
}

// docs/alerts.yml is a valid Prometheus rule file: every rule has an
// alert, an expression, a for, a severity, a summary and a description;
// the alerts the operator needs are there; and every metric an expression
// reads (and every label value it matches) is one live nodes serve, read
// from the /metrics of a master (with an archive) and of its slave.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("docs/alerts.yml: %v", err)
	}

	dir := t.TempDir()
	snaps, err := snapshot.Open(filepath.Join(dir, "snapshots"), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	arch, err := archive.Open(filepath.Join(dir, "archive"), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { arch.Close() })
	msrv, mc := mustRunMasterConfig(t, master.Config{Snapshots: snaps, Archive: arch}, func(s *api.Server) { s.Snapshots = snaps })
	mustExec(t, mc, "CREATE TABLE t (v)")
	ssrv, _ := mustRunSlave(t, msrv.URL(), "s1")
	waitApplied(t, ssrv, msrv.Master.Log().LastIndex())
	waitFor(t, "the master to list its slave", func() bool {
		_, ok := metric(t, msrv.URL(), `walship_slave_lag_entries{slave="s1"}`)
		return ok
	})
	live := scrapeAll(t, msrv.URL(), ssrv.URL())

	// The alerts an operator needs, each by what its expression reads.
	need := map[string]string{
		"node down":                     "up",
		"slave lagging":                 "walship_lag_seconds",
		"slave diverged":                `walship_node_state{state="diverged"}`,
		"master cannot write":           "walship_master_can_write",
		"disk low":                      `walship_node_state{state="disk_low"}`,
		"archive failing":               "walship_archive_failing",
		"write concern shortfalls rise": "walship_write_concern_shortfalls_total",
		"log appends fail":              "walship_log_append_failures_total",
	}
	seen := map[string]bool{}
	var rules int
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("a group without a name or rules: %q", g.Name)
		}
		for _, r := range g.Rules {
			rules++
			switch {
			case r.Alert == "":
				t.Errorf("a rule without alert: %q", r.Expr)
				continue
			case seen[r.Alert]:
				t.Errorf("%s: named twice", r.Alert)
			case strings.TrimSpace(r.Expr) == "":
				t.Errorf("%s: no expr", r.Alert)
			case !regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`).MatchString(r.For):
				t.Errorf("%s: for %q is not a Prometheus duration", r.Alert, r.For)
			case r.Labels["severity"] != "critical" && r.Labels["severity"] != "warning":
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "" || r.Annotations["description"] == "":
				t.Errorf("%s: annotations need a summary and a description: %v", r.Alert, r.Annotations)
			}
			seen[r.Alert] = true
			for what, sel := range need {
				if strings.Contains(r.Expr, sel) {
					delete(need, what)
				}
			}
			names, matchers := metricsOf(r.Expr)
			if len(names) == 0 {
				t.Errorf("%s: the expression reads no metric: %s", r.Alert, r.Expr)
			}
			for _, n := range names {
				if n != "up" && !live.names[n] {
					t.Errorf("%s: %s is in no node's /metrics", r.Alert, n)
				}
			}
			for k, vals := range matchers {
				if strings.HasPrefix(k, "up ") {
					continue // Prometheus' own labels (job)
				}
				for _, v := range vals {
					if !live.labels[k][v] {
						t.Errorf("%s: no node serves %s=%q", r.Alert, strings.Replace(k, " ", " with ", 1), v)
					}
				}
			}
		}
	}
	if rules < len(seen) || rules == 0 {
		t.Fatalf("%d rules", rules)
	}
	for what, sel := range need {
		t.Errorf("no alert for %s (an expression reading %s)", what, sel)
	}
}

// The PromQL reader of TestAlertRules finds metrics, not functions,
// keywords, label names, durations or numbers.
func TestMetricsOfExpr(t *testing.T) {
	names, matchers := metricsOf(`sum by (instance) (rate(a_total{x="1",y=~"b|c"}[5m])) > 2 * 1024 and on(instance) b_x offset 5m or absent(c == 1e9)`)
	if want := []string{"a_total", "b_x", "c"}; !slices.Equal(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	if got := matchers["a_total y"]; !slices.Equal(got, []string{"b", "c"}) || !slices.Equal(matchers["a_total x"], []string{"1"}) {
		t.Fatalf("matchers %v", matchers)
	}
}
