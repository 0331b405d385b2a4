//! The crate docs promise that a Redis Cluster connection can carry the exchange.

use redress_redis::Fleet;

#[test]
fn a_cluster_connection_is_accepted_by_the_builder() {
    fn build(conn: redis::cluster_async::ClusterConnection) {
        let _ = Fleet::builder("ns").build(conn);
    }
    let _ = build;
}

#[test]
fn a_multiplexed_and_a_managed_connection_are_accepted_too() {
    fn plain(conn: redis::aio::MultiplexedConnection) {
        let _ = Fleet::builder("ns").build(conn);
    }
    fn managed(conn: redis::aio::ConnectionManager) {
        let _ = Fleet::builder("ns").build(conn);
    }
    let _ = (plain, managed);
}
