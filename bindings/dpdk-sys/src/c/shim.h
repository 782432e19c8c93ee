/*
 * Out-of-line copies of the DPDK functions that are static inline in the
 * headers (bindgen cannot link to those). Each one forwards to the DPDK
 * function of the same name without the `shim_` prefix.
 */
#ifndef MESHPLANE_DPDK_SHIM_H
#define MESHPLANE_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* ethdev fast path */
uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			       struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			       struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbuf allocation */
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp,
				struct rte_mbuf **mbufs, unsigned int count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);

/* mbuf data window */
void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);
char *shim_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *shim_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m);
int shim_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);

/* lcore and errno */
unsigned int shim_rte_lcore_id(void);
int shim_rte_errno(void);

/* mempool counters */
unsigned int shim_rte_mempool_avail_count(const struct rte_mempool *mp);
unsigned int shim_rte_mempool_in_use_count(const struct rte_mempool *mp);
unsigned int shim_rte_mempool_size(const struct rte_mempool *mp);

/* ring */
unsigned int shim_rte_ring_count(const struct rte_ring *r);
unsigned int shim_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
					 unsigned int n);
unsigned int shim_rte_ring_dequeue_burst(struct rte_ring *r, void **objs,
					 unsigned int n);

#endif
