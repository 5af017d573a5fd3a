//go:build race

package server

// raceEnabled is whether the race detector is on: it makes JSON decoding
// about ten times slower, so floods send fewer requests.
const raceEnabled = true
