//! Columns declared as domains are checked and compared as the type under the domain, with the
//! domain's own modifier: a target domain over `numeric(10,1)` rounds a `numeric(10,3)` source
//! as surely as the bare type does, so it is refused like it (`lossy_types.rs`) until accepted;
//! and a domain over `float8` is compared by its bits on Greenplum 6, where the text of a float in
//! a query's lower slice keeps only 15 digits and two different values would hash alike; and a
//! domain over `real` on an 8.2 kernel is read as `float8` like the bare type, exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Server, TestEnv};

fn config(env: &TestEnv, table: &str, extra: &str) {
    support::day_job::write(env, table, &format!("key = [\"id\"]\n{extra}"), "");
}

/// The domains every test uses, on one side; `amount` and `code` differ between the sides in
/// [`narrowing_through_domains_is_refused_until_accepted`].
fn domains(psql: impl Fn(&str) -> String, amount: &str, code: &str) {
    psql(&format!(
        "CREATE DOMAIN amount AS {amount};\n\
         CREATE DOMAIN code AS {code} CHECK (VALUE <> '');\n\
         CREATE DOMAIN wide AS numeric(12,4);\n\
         CREATE DOMAIN measure AS float8;\n\
         CREATE DOMAIN positive_measure AS measure CHECK (VALUE > 0);"
    ));
}

fn distributed(server: Server) -> &'static str {
    if server == Server::Pg {
        ""
    } else {
        " DISTRIBUTED BY (id)"
    }
}

/// Narrowing hidden behind a domain — on the target, on the source, on both under one name
/// defined differently, and two domains deep — is refused by `config check` and `run` naming
/// the column and the types under the domains; nothing moves. `lossy_columns` accepts it.
fn narrowing_through_domains_is_refused_until_accepted(server: Server, name: &str) {
    let env = TestEnv::on(name, server, server);
    domains(|s| env.src_psql(s), "numeric(10,3)", "varchar(10)");
    domains(|s| env.dst_psql(s), "numeric(10,1)", "varchar(2)");
    let d = distributed(server);
    env.src_psql(&format!(
        "CREATE TABLE nd (id int NOT NULL, ts timestamp NOT NULL, a amount, c code, n numeric(10,3), w wide, \
         p positive_measure){d};\n\
         INSERT INTO nd VALUES (1, '2024-01-01 01:00:00', 1.234, 'ab   ', 1.234, 1.2345, 0.1)"
    ));
    env.dst_psql(&format!(
        "CREATE DOMAIN tenth AS numeric(10,1);\n\
         CREATE DOMAIN small_real AS real;\n\
         CREATE TABLE nd (id int NOT NULL, ts timestamp NOT NULL, a amount, c code, n tenth, w numeric(12,2), \
         p small_real){d}"
    ));
    config(&env, "nd", "");
    let check = env.run(&["config", "check"]);
    check.assert_code(2);
    for line in [
        // One name on both sides, defined differently.
        "column \"a\" is numeric(10,3) (domain amount) on the source but numeric(10,1) (domain amount) on the target",
        "column \"c\" is character varying(10) (domain code) on the source but character varying(2) (domain code) on \
         the target",
        // A bare type into a domain, a domain into a bare type.
        "column \"n\" is numeric(10,3) on the source but numeric(10,1) (domain tenth) on the target",
        "column \"w\" is numeric(12,4) (domain wide) on the source but numeric(12,2) on the target",
        // Two domains deep.
        "column \"p\" is double precision (domain positive_measure) on the source but real (domain small_real) on \
         the target",
    ] {
        assert!(check.stderr.contains(line), "{name}: {line}\n{}", check.render());
    }
    let run = env.run(&["run"]);
    run.assert_code(2);
    assert_eq!(env.dst_psql("SELECT count(*) FROM nd"), "0", "{name}");

    config(&env, "nd", "lossy_columns = [\"a\", \"c\", \"n\", \"w\", \"p\"]");
    env.run(&["config", "check"]).assert_success();
    env.run(&["run"]).assert_success();
    assert_eq!(
        env.dst_psql("SELECT a::text || ' ' || c::text || '|' || n::text || ' ' || w::text || ' ' || p::text FROM nd"),
        "1.2 ab|1.2 1.23 0.1",
        "{name}"
    );
    // compare holds the target to what the accepted load made of the source.
    let compared = env.run(&["compare"]);
    assert_eq!(compared.code, 0, "{name}: {}", compared.render());
}

#[test]
fn postgresql_narrowing_through_domains_is_refused_until_accepted() {
    narrowing_through_domains_is_refused_until_accepted(Server::Pg, "domain_narrow_pg");
}

#[test]
fn gp6_narrowing_through_domains_is_refused_until_accepted() {
    narrowing_through_domains_is_refused_until_accepted(Server::Gp6, "domain_narrow_gp6");
}

/// Domains that keep every value pass, and compare finds a float one bit off in a domain column
/// on Greenplum 6, where the float's text in the compare's lower slice has 15 digits.
#[test]
fn gp6_domains_over_floats_are_compared_by_their_bits() {
    let env = TestEnv::on("domain_float_gp6", Server::Gp6, Server::Gp6);
    for psql in [|e: &TestEnv, s: &str| e.src_psql(s), |e: &TestEnv, s: &str| e.dst_psql(s)] {
        domains(|s| psql(&env, s), "numeric(10,1)", "varchar(10)");
    }
    env.src_psql(
        "CREATE TABLE fd (id int NOT NULL, ts timestamp NOT NULL, m measure, p positive_measure, a amount, \
         w numeric(12,4)) DISTRIBUTED BY (id);\n\
         INSERT INTO fd SELECT i, '2024-01-01 00:00:00'::timestamp + i * interval '1 minute', 0.1 * i, 0.3 * i, i / 10.0, \
         i / 10000.0 FROM generate_series(1, 500) i",
    );
    env.dst_psql(
        "CREATE TABLE fd (id int NOT NULL, ts timestamp NOT NULL, m measure, p positive_measure, a numeric(10,1), \
         w wide) DISTRIBUTED BY (id)",
    );
    config(&env, "fd", "");
    env.run(&["config", "check"]).assert_success();
    env.run(&["run"]).assert_success();
    let same = env.run(&["compare"]);
    assert_eq!(same.code, 0, "{}", same.render());

    // One bit off in each float domain column, on two rows: 15 digits print both alike.
    let shown = "SELECT m::text || ' ' || p::text FROM fd WHERE id IN (7, 11) ORDER BY id";
    let bits =
        "SELECT encode(float8send(m), 'hex') || encode(float8send(p), 'hex') FROM fd WHERE id IN (7, 11) ORDER BY id";
    let (shown_before, bits_before) = (env.dst_psql(shown), env.dst_psql(bits));
    env.dst_psql("UPDATE fd SET m = m * (1 + 2.3e-16) WHERE id = 7");
    env.dst_psql("UPDATE fd SET p = p * (1 + 2.3e-16) WHERE id = 11");
    assert_eq!(env.dst_psql(shown), shown_before);
    assert_ne!(env.dst_psql(bits), bits_before);
    let (out, report) = support::compared::compare_json(&env, &[]);
    assert_eq!(out.code, 3, "{}", out.render());
    let changed = |id: &str| ("changed".to_string(), format!("id={id}"));
    assert_eq!(support::compared::differences(&report), [changed("11"), changed("7")].into(), "{}", out.render());
}

/// A domain over `real` on an 8.2-kernel source is read as `float8` like a bare `real`: 8.2
/// prints a float4 with 8 digits at most, where some need 9 (100.333336 printed as 100.33334
/// comes back as the next float4).
#[test]
fn pg82_domains_over_real_arrive_bit_exact() {
    let env = TestEnv::on("domain_real_pg82", Server::Pg82, Server::Pg);
    env.src_psql(
        "CREATE DOMAIN reading AS real;\n\
         CREATE TABLE rd (id int NOT NULL, ts timestamp NOT NULL, r reading, b real);\n\
         INSERT INTO rd VALUES (1, '2024-01-01 01:00:00', 100.333336, 100.333336)",
    );
    env.dst_psql(
        "CREATE DOMAIN reading AS real; CREATE TABLE rd (id int NOT NULL, ts timestamp NOT NULL, r reading, b real)",
    );
    config(&env, "rd", "");
    env.run(&["run"]).assert_success();
    let bits = "SELECT encode(float4send(r), 'hex') || ' ' || encode(float4send(b), 'hex') FROM rd";
    assert_eq!(env.dst_psql(bits), "42c8aaab 42c8aaab");
    let compared = env.run(&["compare"]);
    assert_eq!(compared.code, 0, "{}", compared.render());
}
