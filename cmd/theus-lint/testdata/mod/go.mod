module example.com/lintcli

go 1.26.0

require github.com/theus-run/theus v0.0.0

require (
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.22 // indirect
	github.com/philhofer/fwd v1.2.0 // indirect
	github.com/rs/zerolog v1.35.1 // indirect
	github.com/tinylib/msgp v1.6.5 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/theus-run/theus => ../../../..
