// Package observe owns what an operator sees of a running supervisor:
// the lock-free Histogram the supervisor counts into, the Prometheus
// exposition of the supervisor's counters (/metrics), the live status
// page, the commit log over HTTP, and the read-only HTTP listener that
// serves them (loopback unless allowed otherwise, with a bearer token
// then; pprof only when asked).
//
// It keeps no counter of its own: every number it serves is read from
// its Source (the supervisor) when asked for, so /metrics, the page,
// theusctl status and theusctl top always agree. It never changes the
// supervisor's state: every route is a GET.
package observe
