module github.com/theus-run/theus

go 1.26.0

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/cenkalti/backoff/v5 v5.0.3
	github.com/tinylib/msgp v1.6.5
	go.uber.org/goleak v1.3.0
)

require github.com/philhofer/fwd v1.2.0 // indirect
