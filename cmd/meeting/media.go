package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meeting.dev/meeting/internal/local"
	"meeting.dev/meeting/internal/schedule"
	"meeting.dev/meeting/internal/sockbuf"
	"meeting.dev/meeting/media/sfu"
	"meeting.dev/meeting/media/turn"
)

// mediaConfig is standalone's in-process media: the SFU's one UDP port and
// TURN's port, on loopback unless a public IP is given.
type mediaConfig struct {
	udpPort         int
	turnPort        int
	publicIP        string
	allowedOrigins  sfuList
	maxParticipants int
	udpBuffer       int
	turnUDPBuffer   int
}

func (c *mediaConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.udpPort, "udp-port", 7882, "the one UDP port of all WebRTC media (0 picks a free one)")
	fs.IntVar(&c.turnPort, "turn-port", 3478, "the UDP and TCP port of TURN (0 picks a free one)")
	fs.StringVar(&c.publicIP, "public-ip", "", "IPv4 address other machines reach this one by: media listens on every interface and announces it in ICE candidates and TURN URLs, and --http-addr defaults to :8080 (default: everything on loopback only)")
	fs.Var(&c.allowedOrigins, "allowed-origins", `Origins accepted on signalling besides the API's own (repeatable or comma-separated)`)
	fs.IntVar(&c.maxParticipants, "max-participants", sfu.DefaultMaxParticipants, "most participants in one meeting's room")
	fs.IntVar(&c.udpBuffer, "udp-buffer", sockbuf.Default, "bytes of kernel receive and send buffer asked for the media UDP port (capped by net.core.rmem_max/wmem_max; logged when it is)")
	fs.IntVar(&c.turnUDPBuffer, "turn-udp-buffer", turn.DefaultUDPBuffer, "bytes of kernel receive and send buffer asked for TURN's UDP sockets (capped as --udp-buffer is)")
}

func (c *mediaConfig) validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		port int
	}{{"--udp-port", c.udpPort}, {"--turn-port", c.turnPort}} {
		if p.port < 0 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: not a port", p.name, p.port))
		}
	}
	if c.udpPort != 0 && c.udpPort == c.turnPort {
		errs = append(errs, fmt.Errorf("--udp-port and --turn-port are both %d", c.udpPort))
	}
	if c.publicIP != "" {
		ip, err := netip.ParseAddr(c.publicIP)
		if err != nil || !ip.Unmap().Is4() || ip.IsUnspecified() {
			errs = append(errs, fmt.Errorf("--public-ip %q: want a specific IPv4 address", c.publicIP))
		}
	}
	if c.udpBuffer < 0 {
		errs = append(errs, fmt.Errorf("--udp-buffer %d: must not be negative", c.udpBuffer))
	}
	if c.turnUDPBuffer < 0 {
		errs = append(errs, fmt.Errorf("--turn-udp-buffer %d: must not be negative", c.turnUDPBuffer))
	}
	if c.maxParticipants <= 0 {
		errs = append(errs, fmt.Errorf("--max-participants %d: must be positive", c.maxParticipants))
	}
	return errors.Join(errs...)
}

// addrs returns the address media is announced at and the one it binds.
func (c *mediaConfig) addrs() (public netip.Addr, bind net.IP) {
	if c.publicIP == "" {
		return netip.MustParseAddr("127.0.0.1"), net.IPv4(127, 0, 0, 1)
	}
	return netip.MustParseAddr(c.publicIP).Unmap(), net.IPv4zero
}

// openMedia opens the media sockets and starts the rooms of standalone mode.
func openMedia(c mediaConfig, policy schedule.Policy, drain time.Duration, reg prometheus.Registerer, log *slog.Logger) (*local.Rooms, error) {
	public, bind := c.addrs()
	ice, err := net.ListenUDP("udp4", &net.UDPAddr{IP: bind, Port: c.udpPort})
	if err != nil {
		return nil, fmt.Errorf("media: listen on UDP port %d: %w", c.udpPort, err)
	}
	turnUDP, turnTCP, err := listenTURN(bind, c.turnPort)
	if err != nil {
		_ = ice.Close()
		return nil, err
	}
	sockbuf.SetAndLog(log, "sfu ice", c.udpBuffer, ice)
	sockbuf.SetAndLog(log, "turn", c.turnUDPBuffer, turnUDP)
	rooms, err := local.New(local.Config{
		ICEConn:         ice,
		TURNConns:       []net.PacketConn{turnUDP},
		TURNListeners:   []net.Listener{turnTCP},
		PublicIP:        public,
		Policy:          policy,
		AllowedOrigins:  c.allowedOrigins,
		MaxParticipants: c.maxParticipants,
		DrainTimeout:    drain,
		Registerer:      reg,
		Log:             log,
	})
	if err != nil {
		_, _, _ = ice.Close(), turnUDP.Close(), turnTCP.Close()
		return nil, err
	}
	udp, tcp := rooms.TURNAddrs()
	log.Info("media listening", "ice_udp", ice.LocalAddr().String(), "turn_udp", udp.String(), "turn_tcp", tcp.String(),
		"public_ip", public.String())
	return rooms, nil
}

// listenTURN opens TURN's UDP socket and TCP listener on one port; port 0
// picks a port free for both.
func listenTURN(bind net.IP, port int) (net.PacketConn, net.Listener, error) {
	for try := 0; ; try++ {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: bind, Port: port})
		if err != nil {
			return nil, nil, fmt.Errorf("media: TURN: listen on UDP port %d: %w", port, err)
		}
		p := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", net.JoinHostPort(bind.String(), strconv.Itoa(p)))
		if err == nil {
			return u, l, nil
		}
		_ = u.Close()
		if port != 0 || try == 10 {
			return nil, nil, fmt.Errorf("media: TURN: listen on TCP port %d: %w", p, err)
		}
	}
}
