package model

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ECS modeled types and the settings.ecs group (containers-settings-tools
// §3.3); they render into the ECS agent's environment.

// ECSSettings is the settings.ecs group: how the ECS agent joins its cluster
// and runs tasks.
type ECSSettings struct {
	Cluster                    *SingleLineString                     `json:"cluster,omitempty" doc:"Name or ARN of the ECS cluster the instance joins."`
	InstanceAttributes         map[ECSAttributeKey]ECSAttributeValue `json:"instance-attributes,omitempty" doc:"Custom attributes the instance registers with, by name."`
	AllowPrivilegedContainers  *bool                                 `json:"allow-privileged-containers,omitempty" doc:"Let tasks run privileged containers."`
	LoggingDrivers             []ECSLoggingDriver                    `json:"logging-drivers,omitempty" doc:"Log drivers that containers on the instance may use."`
	LogLevel                   *ECSAgentLogLevel                     `json:"loglevel,omitempty" doc:"Verbosity of the ECS agent's logs: debug, info, warn, error or crit."`
	EnableSpotInstanceDraining *bool                                 `json:"enable-spot-instance-draining,omitempty" doc:"Drain the instance when a Spot interruption notice arrives."`
	ImagePullBehavior          *ECSImagePullBehavior                 `json:"image-pull-behavior,omitempty" doc:"When the agent pulls images: default, always, once or prefer-cached."`
	ContainerStopTimeout       *ECSDurationValue                     `json:"container-stop-timeout,omitempty" doc:"How long a container gets to stop before it is killed."`
	TaskCleanupWait            *ECSDurationValue                     `json:"task-cleanup-wait,omitempty" doc:"How long a stopped task's containers are kept before removal."`
	MetadataServiceRPS         *uint32                               `json:"metadata-service-rps,omitempty" doc:"Steady requests per second allowed to the task metadata endpoint."`
	MetadataServiceBurst       *uint32                               `json:"metadata-service-burst,omitempty" doc:"Burst of requests allowed to the task metadata endpoint."`
	ReservedMemory             *uint16                               `json:"reserved-memory,omitempty" doc:"Memory in MiB held back from tasks for the system."`
	ImageCleanupWait           *ECSDurationValue                     `json:"image-cleanup-wait,omitempty" doc:"Time between automated image cleanup cycles."`
	ImageCleanupDeletePerCycle *uint32                               `json:"image-cleanup-delete-per-cycle,omitempty" doc:"Most images removed in one cleanup cycle."`
	ImageCleanupEnabled        *bool                                 `json:"image-cleanup-enabled,omitempty" doc:"Remove unused images automatically."`
	ImageCleanupAge            *ECSDurationValue                     `json:"image-cleanup-age,omitempty" doc:"Least time after being pulled before an unused image may be removed."`
	BackendHost                *SingleLineString                     `json:"backend-host,omitempty" doc:"ECS endpoint the agent talks to instead of the default."`
	AWSVPCBlockIMDS            *bool                                 `json:"awsvpc-block-imds,omitempty" doc:"Block instance metadata access for tasks in awsvpc network mode."`
	EnableContainerMetadata    *bool                                 `json:"enable-container-metadata,omitempty" doc:"Write a container metadata file into each container."`
}

var ecsAttributeKeyRe = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,128}$`)

// ECSAttributeKey names a custom instance attribute: 1-128 characters of
// A-Z, a-z, 0-9, '.', '_', '/' and '-'.
type ECSAttributeKey string

// Validate implements Validator.
func (s ECSAttributeKey) Validate() error {
	if !ecsAttributeKeyRe.MatchString(string(s)) {
		return errors.New("must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', '/' and '-'")
	}
	return nil
}

var ecsAttributeValueRe = regexp.MustCompile(`^[A-Za-z0-9.@:_/\\ -]{1,128}$`)

// ECSAttributeValue is the value of a custom instance attribute: 1-128
// characters of A-Z, a-z, 0-9, '.', '@', ':', '_', '/', '\', '-' and space,
// not starting or ending with a space.
type ECSAttributeValue string

// Validate implements Validator.
func (s ECSAttributeValue) Validate() error {
	v := string(s)
	switch {
	case !ecsAttributeValueRe.MatchString(v):
		return fmt.Errorf(`%q must be 1-128 characters of A-Z, a-z, 0-9, '.', '@', ':', '_', '/', '\', '-' and space`, v)
	case strings.HasPrefix(v, " ") || strings.HasSuffix(v, " "):
		return fmt.Errorf("%q must not start or end with a space", v)
	}
	return nil
}

// ECSLoggingDriver is a Docker log driver the ECS agent may offer to tasks.
type ECSLoggingDriver string

// Validate implements Validator.
func (s ECSLoggingDriver) Validate() error {
	return oneOf(string(s), "json-file", "syslog", "journald", "gelf", "fluentd",
		"awslogs", "splunk", "awsfirelens", "none")
}

// ECSAgentLogLevel is the ECS agent's log level.
type ECSAgentLogLevel string

// Validate implements Validator.
func (s ECSAgentLogLevel) Validate() error {
	return oneOf(string(s), "debug", "info", "warn", "error", "crit")
}

// ECSImagePullBehavior says when the ECS agent pulls a task's images.
type ECSImagePullBehavior string

// Validate implements Validator.
func (s ECSImagePullBehavior) Validate() error {
	return oneOf(string(s), "default", "always", "once", "prefer-cached")
}

// ECSDurationValue is a duration such as "30s", "3h" or "1h30m", in units of
// h, m, s, ms, us (or µs) and ns, largest first.
type ECSDurationValue string

// Validate implements Validator.
func (s ECSDurationValue) Validate() error { return checkDuration(string(s), ecsDurationUnits) }
