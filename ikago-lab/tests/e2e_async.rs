//! End-to-end through the blocking firewall with `ikago-async` (root; skipped otherwise)

mod common;

common::lab_tests!(ikago_lab::Runner::Async =>
    plain_tunnel_carries_everything,
    behind_masquerade,
    every_method,
    wrong_password_gets_nothing,
    recovers_after_server_restart,
    fails_over_to_the_second_server,
    sighup_reloads_the_config,
    second_server_on_the_port_exits_2,
    syn_flood_locks_nobody_out,
    sigterm_exits_0_and_removes_rules,
    tells_the_service_manager,
    shaped_udp_variant,
    lossy_variant,
    monitor_end_to_end,
    unprivileged_with_capabilities,
    ikago2_through_the_firewall,
    ikago2_replay_attack_is_counted,
    ikago2_only_server_ignores_probes,
    compat_and_ikago2_clients_on_one_server,
);
