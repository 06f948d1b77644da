//! (being written)

code_point! {
    /// The IPv4 protocol / IPv6 next-header number.
    pub struct IpProtocol(u8) {
        /// IPv6 hop-by-hop options.
        HOP_BY_HOP = 0 => "hop-by-hop",
        /// Internet Control Message Protocol.
        ICMP = 1 => "icmp",
        /// Transmission Control Protocol.
        TCP = 6 => "tcp",
        /// User Datagram Protocol.
        UDP = 17 => "udp",
        /// IPv6 routing header.
        IPV6_ROUTE = 43 => "ipv6-route",
        /// IPv6 fragment header.
        IPV6_FRAG = 44 => "ipv6-frag",
        /// Generic Routing Encapsulation (GRE, NVGRE).
        GRE = 47 => "gre",
        /// ICMP for IPv6.
        ICMPV6 = 58 => "icmpv6",
        /// IPv6 no next header.
        IPV6_NO_NEXT = 59 => "ipv6-nonxt",
        /// IPv6 destination options.
        IPV6_OPTS = 60 => "ipv6-opts",
    }
}
