// SPDX-License-Identifier: GPL-2.0
// tunnel_encap.bpf.c -- SeCoNetBench's IPIP and GRE tunnels for kernels without CONFIG_NET_IPIP /
// CONFIG_NET_IPGRE (tunnels/ip_in_ip.py). The bytes on the wire are standard IPIP (IP protocol 4,
// RFC 2003) and GRE (protocol 47, RFC 2784: 4-byte header, no key, no checksum, no sequence
// number, protocol type 0x0800). There is no tunnel device: the host routes the other hosts'
// container subnets over its underlay device as the routing tunnel does, and the programs below,
// attached with tc clsact (direct-action) to that underlay device, add and strip the outer header.
//
// Sections (tc's "sec" argument):
//   encap_ipip   tc egress: an IPv4 packet whose (source /24, destination /24) is a key of
//   encap_gre    tunnel_routes gets an outer IPv4 header (+ GRE header) with the value's
//                underlay addresses, via bpf_skb_adjust_room(ENCAP_L3_IPV4 [| ENCAP_L4_GRE]),
//                which keeps GSO/TSO working (SKB_GSO_IPXIP4 / SKB_GSO_GRE). Other packets pass.
//   decap        tc ingress: IPIP, or GRE with flags 0 and protocol 0x0800, whose outer
//                (saddr, daddr) is a key of tunnel_peers loses its outer header
//                (bpf_skb_adjust_room(-len, DECAP_L3_IPV4)) and goes on as the inner packet.
//
// Both maps are pinned by name (LIBBPF_PIN_BY_NAME) in the run's private bpffs, so all hosts of a
// deployment share them; they are filled from user space with bpftool. A key of tunnel_routes
// names the sending host's container subnet, so one map serves every host.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#endif

#define SUBNET_MASK 0xffffff00 /* container subnets are /24 (198.19.<host>.0/24) */
#define MAX_TUNNELS 1024       /* ordered host pairs: 16 hosts need 240 */

struct subnets {
	__u32 src; /* network byte order, masked to the /24 */
	__u32 dst;
};

struct endpoints {
	__u32 saddr; /* outer addresses: the hosts' underlay addresses, network byte order */
	__u32 daddr;
};

struct gre_base {
	__be16 flags; /* 0: version 0, no checksum, key or sequence number */
	__be16 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TUNNELS);
	__type(key, struct subnets);
	__type(value, struct endpoints);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tunnel_routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TUNNELS);
	__type(key, struct endpoints);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tunnel_peers SEC(".maps");

/* The IPv4 header behind the Ethernet header in the linear part of the skb, or NULL. */
static __always_inline struct iphdr *ipv4(struct __sk_buff *skb, __u32 extra)
{
	const __u32 wanted = sizeof(struct ethhdr) + sizeof(struct iphdr) + extra;
	struct ethhdr *eth = (void *)(long)skb->data;
	struct iphdr *ip;

	if ((void *)eth + wanted > (void *)(long)skb->data_end) {
		if (bpf_skb_pull_data(skb, wanted) < 0)
			return NULL;
		eth = (void *)(long)skb->data;
	}
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > (void *)(long)skb->data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	return ip;
}

static __always_inline __u16 header_checksum(const struct iphdr *ip)
{
	const __u16 *word = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += word[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static __always_inline int encap(struct __sk_buff *skb, int gre)
{
	struct iphdr *ip = ipv4(skb, 0);
	struct subnets key;
	struct endpoints *tunnel;
	struct {
		struct iphdr ip;
		struct gre_base gre;
	} outer = {};
	__u32 outer_len = sizeof(struct iphdr) + (gre ? sizeof(struct gre_base) : 0);
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
		      (gre ? BPF_F_ADJ_ROOM_ENCAP_L4_GRE : 0);
	__u16 inner_len;
	__u8 tos;

	if (!ip)
		return TC_ACT_OK; /* ARP and anything not IPv4 */
	key.src = ip->saddr & bpf_htonl(SUBNET_MASK);
	key.dst = ip->daddr & bpf_htonl(SUBNET_MASK);
	tunnel = bpf_map_lookup_elem(&tunnel_routes, &key);
	if (!tunnel)
		return TC_ACT_OK; /* not container traffic between hosts: the underlay's own */
	inner_len = bpf_ntohs(ip->tot_len);
	tos = ip->tos;

	outer.ip.version = 4;
	outer.ip.ihl = 5;
	outer.ip.tos = tos;
	outer.ip.ttl = 64;
	outer.ip.frag_off = bpf_htons(0x4000); /* DF, as the kernel tunnels send by default */
	outer.ip.protocol = gre ? IPPROTO_GRE : IPPROTO_IPIP;
	outer.ip.tot_len = bpf_htons(inner_len + outer_len); /* GSO rewrites it per segment */
	outer.ip.saddr = tunnel->saddr;
	outer.ip.daddr = tunnel->daddr;
	outer.ip.check = header_checksum(&outer.ip);
	outer.gre.proto = bpf_htons(ETH_P_IP);

	if (bpf_skb_adjust_room(skb, outer_len, BPF_ADJ_ROOM_MAC, flags))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &outer, outer_len, 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("encap_ipip")
int tunnel_encap_ipip(struct __sk_buff *skb)
{
	return encap(skb, 0);
}

SEC("encap_gre")
int tunnel_encap_gre(struct __sk_buff *skb)
{
	return encap(skb, 1);
}

SEC("decap")
int tunnel_decap(struct __sk_buff *skb)
{
	struct iphdr *ip = ipv4(skb, 0);
	struct endpoints key;
	struct gre_base *gre;
	int outer_len;

	if (!ip || ip->ihl != 5)
		return TC_ACT_OK;
	if (ip->protocol == IPPROTO_IPIP) {
		outer_len = sizeof(struct iphdr);
	} else if (ip->protocol == IPPROTO_GRE) {
		ip = ipv4(skb, sizeof(struct gre_base));
		if (!ip)
			return TC_ACT_OK;
		gre = (void *)(ip + 1);
		if ((void *)(gre + 1) > (void *)(long)skb->data_end || gre->flags != 0 ||
		    gre->proto != bpf_htons(ETH_P_IP))
			return TC_ACT_OK;
		outer_len = sizeof(struct iphdr) + sizeof(struct gre_base);
	} else {
		return TC_ACT_OK;
	}
	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	if (!bpf_map_lookup_elem(&tunnel_peers, &key))
		return TC_ACT_OK; /* not from a tunnel of this deployment: the stack decides */
	if (bpf_skb_adjust_room(skb, -outer_len, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_DECAP_L3_IPV4))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
