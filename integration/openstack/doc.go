// Package openstack runs pkg/nova against a real Nova brought up from
// Debian's packages by integration/internal/stack (keystone, placement,
// glance, nova-api, conductor, scheduler, two fake-driver nova-compute "cn1"
// and "cn2", RabbitMQ, PostgreSQL) on free loopback ports. TestMain starts the
// stack and stops it by PID, also when a test fails; a watchdog stops it if
// the test binary is killed.
package openstack
