package model

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func validateECSDoc(t *testing.T, jsonDoc string) ValidationError {
	t.Helper()
	v, err := DecodeJSON([]byte(jsonDoc))
	if err != nil {
		t.Fatal(err)
	}
	var c checker
	c.check([]string{"settings", "ecs"}, reflect.TypeFor[ECSSettings](), v)
	return c.errs
}

func TestECSTypes(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	runValidateCases(t, []validateCase{
		{ECSAttributeKey("a"), ""}, {ECSAttributeKey("alphabetical"), ""}, {ECSAttributeKey("1234567890"), ""},
		{ECSAttributeKey("with-dash"), ""}, {ECSAttributeKey("have.period/slash"), ""},
		{ECSAttributeKey("have_underscore_too"), ""}, {ECSAttributeKey(a(128)), ""},
		{ECSAttributeKey(".leadingperiod"), ""}, {ECSAttributeKey("trailingperiod."), ""},
		{ECSAttributeKey(""), "must be 1-128 characters"}, {ECSAttributeKey(a(129)), "1-128 characters"},
		{ECSAttributeKey("@"), "A-Z, a-z, 0-9"}, {ECSAttributeKey("$"), "A-Z, a-z, 0-9"},
		{ECSAttributeKey(":"), "A-Z, a-z, 0-9"}, {ECSAttributeKey("no spaces allowed"), "A-Z, a-z, 0-9"},

		{ECSAttributeValue("a"), ""}, {ECSAttributeValue("alphabetical"), ""}, {ECSAttributeValue("with-dash"), ""},
		{ECSAttributeValue("have.period/slash"), ""}, {ECSAttributeValue(`have/slash\backslash`), ""},
		{ECSAttributeValue("with spaces in between"), ""}, {ECSAttributeValue(a(128)), ""},
		{ECSAttributeValue("@ and : allowed too"), ""}, {ECSAttributeValue(`\`), ""}, {ECSAttributeValue(`\ \`), ""},
		{ECSAttributeValue(""), "must be 1-128 characters"}, {ECSAttributeValue(a(129)), "1-128 characters"},
		{ECSAttributeValue("$"), "must be 1-128 characters of A-Z"}, {ECSAttributeValue("%"), "of A-Z"},
		{ECSAttributeValue("tab\there"), "of A-Z"}, {ECSAttributeValue("new\nline"), "of A-Z"},
		{ECSAttributeValue(" leading space"), "must not start or end with a space"},
		{ECSAttributeValue("trailing space "), "must not start or end with a space"},

		{ECSLoggingDriver("json-file"), ""}, {ECSLoggingDriver("syslog"), ""}, {ECSLoggingDriver("journald"), ""},
		{ECSLoggingDriver("gelf"), ""}, {ECSLoggingDriver("fluentd"), ""}, {ECSLoggingDriver("awslogs"), ""},
		{ECSLoggingDriver("splunk"), ""}, {ECSLoggingDriver("awsfirelens"), ""}, {ECSLoggingDriver("none"), ""},
		{ECSLoggingDriver(""), "must be one of: json-file, syslog"},
		{ECSLoggingDriver("json"), `"json" must be one of`}, {ECSLoggingDriver("JSON-file"), "must be one of"},

		{ECSAgentLogLevel("debug"), ""}, {ECSAgentLogLevel("info"), ""}, {ECSAgentLogLevel("warn"), ""},
		{ECSAgentLogLevel("error"), ""}, {ECSAgentLogLevel("crit"), ""},
		{ECSAgentLogLevel(""), "must be one of: debug, info, warn, error, crit"},
		{ECSAgentLogLevel("warning"), `"warning" must be one of`}, {ECSAgentLogLevel("errors"), "must be one of"},

		{ECSImagePullBehavior("default"), ""}, {ECSImagePullBehavior("always"), ""},
		{ECSImagePullBehavior("once"), ""}, {ECSImagePullBehavior("prefer-cached"), ""},
		{ECSImagePullBehavior(""), "must be one of: default, always, once, prefer-cached"},
		{ECSImagePullBehavior("never"), `"never" must be one of`}, {ECSImagePullBehavior("tomorrow"), "must be one of"},

		{ECSDurationValue("99s"), ""}, {ECSDurationValue("20m"), ""}, {ECSDurationValue("1h"), ""},
		{ECSDurationValue("3h"), ""}, {ECSDurationValue("30s"), ""}, {ECSDurationValue("1h2m3s"), ""},
		{ECSDurationValue("4m5s"), ""}, {ECSDurationValue("2h3s"), ""}, {ECSDurationValue("1.5h3.5m"), ""},
		{ECSDurationValue("1ms1us1ns"), ""}, {ECSDurationValue("1s1µs1ns"), ""},
		{ECSDurationValue(""), "not a duration"}, {ECSDurationValue("100"), "not a duration"},
		{ECSDurationValue("...3ms"), "not a duration"}, {ECSDurationValue("1..5s"), "not a duration"},
		{ECSDurationValue("ten second"), "not a duration"}, {ECSDurationValue("1y2w"), "units: h, m, s, ms, us, µs, ns"},
		{ECSDurationValue("1m2h"), "largest to smallest"}, {ECSDurationValue("1us1µs"), "each at most once"},
		{ECSDurationValue("3000000h"), "too long"},
	})
}

func TestECSSettingsStruct(t *testing.T) {
	checkModelStruct(t, reflect.TypeFor[ECSSettings](), map[reflect.Type]bool{})
	fields := fieldByName(reflect.TypeFor[ECSSettings]())
	for _, k := range []string{"cluster", "instance-attributes", "allow-privileged-containers", "logging-drivers",
		"loglevel", "enable-spot-instance-draining", "image-pull-behavior", "container-stop-timeout",
		"task-cleanup-wait", "metadata-service-rps", "metadata-service-burst", "reserved-memory",
		"image-cleanup-wait", "image-cleanup-delete-per-cycle", "image-cleanup-enabled", "image-cleanup-age",
		"backend-host", "awsvpc-block-imds", "enable-container-metadata"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("ECSSettings has no %q", k)
		}
	}
}

const realisticECSDoc = `{
	"cluster": "arn:aws:ecs:us-west-2:123456789012:cluster/prod",
	"instance-attributes": {"attribute.name": "value with spaces", "team": "payments", "zone/rack": "r12:u4"},
	"allow-privileged-containers": false,
	"logging-drivers": ["json-file", "awslogs", "none"],
	"loglevel": "info",
	"enable-spot-instance-draining": true,
	"image-pull-behavior": "prefer-cached",
	"container-stop-timeout": "30s",
	"task-cleanup-wait": "3h",
	"image-cleanup-wait": "30m",
	"image-cleanup-age": "1h",
	"metadata-service-rps": 40,
	"metadata-service-burst": 60,
	"reserved-memory": 256,
	"image-cleanup-delete-per-cycle": 5,
	"image-cleanup-enabled": true,
	"backend-host": "https://ecs.us-west-2.amazonaws.com",
	"awsvpc-block-imds": true,
	"enable-container-metadata": true
}`

func TestECSDocument(t *testing.T) {
	if errs := validateECSDoc(t, realisticECSDoc); len(errs) != 0 {
		t.Fatalf("realistic document refused: %v", errs)
	}
	var s ECSSettings
	if err := json.Unmarshal([]byte(realisticECSDoc), &s); err != nil {
		t.Fatal(err)
	}
	if s.ReservedMemory == nil || *s.ReservedMemory != 256 || s.InstanceAttributes["zone/rack"] != "r12:u4" {
		t.Errorf("decoded %+v", s)
	}

	bad := `{
	"clustre": "prod",
	"loglevel": "verbose",
	"logging-drivers": ["json-file", "docker"],
	"instance-attributes": {"team": " padded ", "` + strings.Repeat("k", 129) + `": "v", "bad key": "v"},
	"reserved-memory": 70000,
	"container-stop-timeout": "30",
	"metadata-service-rps": -1,
	"image-pull-behavior": "never",
	"backend-host": "two\nlines",
	"awsvpc-block-imds": "true"
}`
	wantFieldErrors(t, validateECSDoc(t, bad), map[string]string{
		"settings.ecs.clustre":                                         "unknown setting (allowed here: allow-privileged-containers,",
		"settings.ecs.loglevel":                                        `"verbose" must be one of: debug, info, warn, error, crit`,
		"settings.ecs.logging-drivers[1]":                              `"docker" must be one of`,
		"settings.ecs.instance-attributes.team":                        "must not start or end with a space",
		"settings.ecs.instance-attributes." + strings.Repeat("k", 129): "invalid name: must be 1-128 characters",
		"settings.ecs.instance-attributes.bad key":                     "invalid name",
		"settings.ecs.reserved-memory":                                 "expected a non-negative integer up to 65535, got 70000",
		"settings.ecs.container-stop-timeout":                          `"30" is not a duration`,
		"settings.ecs.metadata-service-rps":                            "expected a non-negative integer",
		"settings.ecs.image-pull-behavior":                             `"never" must be one of`,
		"settings.ecs.backend-host":                                    "must be a single line",
		"settings.ecs.awsvpc-block-imds":                               `expected true or false, got the string "true"`,
	})
}
