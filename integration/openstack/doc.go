// Package openstack runs pkg/nova against a real Nova brought up from
// Debian's packages by stack-up.sh (keystone, placement, glance, nova-api,
// conductor, scheduler, two fake-driver nova-compute "cn1" and "cn2",
// RabbitMQ, PostgreSQL) on free loopback ports. TestMain starts the stack and
// stops it by PID with stack-down.sh, also when a test fails; a watchdog
// (stack-down.sh --after <pid>) stops it if the test binary is killed.
package openstack
