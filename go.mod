module github.com/theus-run/theus

go 1.26

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/cenkalti/backoff/v5 v5.0.3
	go.uber.org/goleak v1.3.0
)
