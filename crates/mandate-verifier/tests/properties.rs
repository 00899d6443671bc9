//! Properties of every block a token holder can append, signed by the
//! holder's key or not: authorizing never panics and returns, never allows a
//! request the parent denied, and never changes the principal, task or chain
//! the verifier and `inspect` report. Blocks are drawn from the grammar in
//! `block_grammar/` (shared with the fuzz targets), including expressions
//! nested hundreds of levels deep and strings that break Datalog printing.
//!
//! Cases run in forked processes, so a stack overflow is reported as a
//! failing case with its (shrunk) input instead of killing the test binary.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod block_grammar;

use std::sync::LazyLock;
use std::time::Duration;

use block_grammar::{
    request_time, Appended, BlockAst, BodyAst, CheckAst, ExprAst, FlatOpAst, Harness, KeyAst,
    LeafAst, NameAst, OpAst, PredAst, RuleAst, StrAst, TermAst, HOSTILE_STRINGS, REQUESTS,
};
use mandate_core::{ResourcePath, Restrictions};
use mandate_issuer::{mint, MintRequest};
use proptest::prelude::*;
use proptest::test_runner::Config;

static HARNESS: LazyLock<Harness> = LazyLock::new(Harness::new);

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Forked, so a stack overflow fails the case instead of the binary.
        fork: true,
        // Shrinking runs in forks too; keep it bounded on a shared machine.
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------
// Strategies mirroring the fuzz grammar
// ---------------------------------------------------------------------------

/// Mostly shallow, sometimes several hundred levels: the crash class.
fn depth() -> impl Strategy<Value = u16> {
    prop_oneof![3 => 0u16..8, 1 => 150u16..=800]
}

fn str_ast() -> impl Strategy<Value = StrAst> {
    prop_oneof![
        4 => any::<u8>().prop_map(StrAst::Hostile),
        2 => "[\"\\\\/*a-z ();\n]{0,16}".prop_map(StrAst::Text),
        1 => any::<String>().prop_map(StrAst::Text),
        1 => (any::<u8>(), 0u16..600).prop_map(|(unit, times)| StrAst::Repeat { unit, times }),
    ]
}

fn leaf() -> impl Strategy<Value = LeafAst> {
    prop_oneof![
        any::<i64>().prop_map(LeafAst::Int),
        str_ast().prop_map(LeafAst::Str),
        any::<u64>().prop_map(LeafAst::Date),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(LeafAst::Bytes),
        any::<bool>().prop_map(LeafAst::Bool),
        Just(LeafAst::Null),
        (0u8..4).prop_map(LeafAst::Var),
    ]
}

fn term() -> impl Strategy<Value = TermAst> {
    let key = prop_oneof![
        any::<i64>().prop_map(KeyAst::Int),
        str_ast().prop_map(KeyAst::Str)
    ];
    prop_oneof![
        4 => leaf().prop_map(TermAst::Leaf),
        1 => prop::collection::vec(leaf(), 0..4).prop_map(TermAst::Set),
        1 => prop::collection::vec(leaf(), 0..4).prop_map(TermAst::Array),
        1 => prop::collection::vec((key, leaf()), 0..3).prop_map(TermAst::Map),
        1 => (0u8..3, depth(), leaf())
            .prop_map(|(kind, depth, leaf)| TermAst::Nested { kind, depth, leaf }),
    ]
}

fn flat_op() -> impl Strategy<Value = FlatOpAst> {
    prop_oneof![
        2 => term().prop_map(FlatOpAst::Value),
        1 => any::<u8>().prop_map(FlatOpAst::Unary),
        1 => any::<u8>().prop_map(FlatOpAst::Binary),
    ]
}

fn op() -> impl Strategy<Value = OpAst> {
    prop_oneof![
        3 => flat_op().prop_map(OpAst::Flat),
        1 => (
            prop::collection::vec(0u8..4, 0..2),
            prop::collection::vec(flat_op(), 0..4)
        )
            .prop_map(|(params, body)| OpAst::Closure { params, body }),
        2 => (0u8..7, depth()).prop_map(|(shape, depth)| OpAst::Deep { shape, depth }),
        1 => (
            str_ast(),
            prop_oneof![any::<u8>().prop_map(Ok), str_ast().prop_map(Err)]
        )
            .prop_map(|(subject, pattern)| OpAst::Regex { subject, pattern }),
    ]
}

fn expr() -> impl Strategy<Value = ExprAst> {
    prop_oneof![
        // One well-formed value (deep or a regex): evaluates, not just fails.
        op().prop_map(|op| ExprAst { ops: vec![op] }),
        prop::collection::vec(op(), 0..5).prop_map(|ops| ExprAst { ops }),
    ]
}

fn pred() -> impl Strategy<Value = PredAst> {
    let name = prop_oneof![
        4 => any::<u8>().prop_map(NameAst::Known),
        1 => str_ast().prop_map(NameAst::Free),
    ];
    (name, prop::collection::vec(term(), 0..3)).prop_map(|(name, terms)| PredAst { name, terms })
}

fn body() -> impl Strategy<Value = BodyAst> {
    (
        prop::collection::vec(pred(), 0..3),
        prop::collection::vec(expr(), 0..3),
        prop::collection::vec(any::<u8>(), 0..2),
    )
        .prop_map(|(preds, exprs, scopes)| BodyAst {
            preds,
            exprs,
            scopes,
        })
}

fn block() -> impl Strategy<Value = BlockAst> {
    let rule = (pred(), body()).prop_map(|(head, body)| RuleAst { head, body });
    let check = (0u8..3, prop::collection::vec(body(), 1..3))
        .prop_map(|(kind, queries)| CheckAst { kind, queries });
    (
        prop::collection::vec(pred(), 0..3),
        prop::collection::vec(rule, 0..2),
        prop::collection::vec(check, 0..3),
        prop::option::of(str_ast()),
    )
        .prop_map(|(facts, rules, checks, context)| BlockAst {
            facts,
            rules,
            checks,
            context,
        })
}

/// A block whose one check holds one well-formed expression nested
/// `150..=800` deep, in any of the deep shapes.
fn deep_block() -> impl Strategy<Value = BlockAst> {
    (0u8..7, 150u16..=800).prop_map(|(shape, depth)| BlockAst {
        facts: Vec::new(),
        rules: Vec::new(),
        checks: vec![CheckAst {
            kind: 0,
            queries: vec![BodyAst {
                preds: Vec::new(),
                exprs: vec![ExprAst {
                    ops: vec![OpAst::Deep { shape, depth }],
                }],
                scopes: Vec::new(),
            }],
        }],
        context: None,
    })
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(96))]

    /// Any unsigned block: decided, never wider, same claims and chain.
    #[test]
    fn an_unsigned_block_never_widens_nor_changes_the_claims(block in block()) {
        let result = HARNESS.check(&Appended { block, signed: false });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    /// Any block signed by the holder: as above; the chain may only grow by
    /// an agent the block itself names in a `hop` fact.
    #[test]
    fn a_block_signed_by_the_holder_never_widens_nor_changes_the_claims(block in block()) {
        let result = HARNESS.check(&Appended { block, signed: true });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Expressions nested hundreds deep are refused or decided, never a
    /// crash: the finding's crash class, signed or not.
    #[test]
    fn deeply_nested_expressions_are_decided_without_crashing(
        block in deep_block(),
        signed in any::<bool>(),
    ) {
        let result = HARNESS.check(&Appended { block, signed });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    /// An issue-time raw check whose string literal holds quotes, backslashes
    /// or comment markers never changes the principal or task the verifier
    /// reports (the print→parse spoof).
    #[test]
    fn string_literals_in_issued_checks_never_change_the_claims(
        pick in any::<u8>(),
        text in "[\"\\\\a-z();/* \n]{0,24}",
        use_pick in any::<bool>(),
    ) {
        let value = if use_pick {
            HOSTILE_STRINGS[usize::from(pick) % HOSTILE_STRINGS.len()].to_string()
        } else {
            text
        };
        let literal = value.replace('\\', "\\\\").replace('"', "\\\"");
        let check = format!("check if operation($o), $o != \"{literal}\"");
        let minted = mint(
            &HARNESS.root,
            &MintRequest {
                principal: "alice@example.com".into(),
                agent: "alice-bot".into(),
                agent_key: Some(HARNESS.agent.public()),
                task: Some("expenses-q3".into()),
                rights: vec!["payments:transfer".parse().unwrap()],
                ttl: Duration::from_secs(3_600),
                restrictions: Restrictions {
                    resource_prefixes: vec![ResourcePath::parse("/acct").unwrap()],
                    checks: vec![check],
                    ..Restrictions::default()
                },
                now: request_time() - Duration::from_secs(60),
            },
        );
        // Refusing the check at issue is fine; misreporting is not.
        if let Ok(minted) = minted {
            let token = minted.to_base64().unwrap();
            for i in 0..REQUESTS.len() {
                if let Ok(d) = HARNESS.decide(&token, i) {
                    prop_assert_eq!(&d.principal, "alice@example.com", "{}", d.reason);
                    prop_assert_eq!(&d.task, "expenses-q3", "{}", d.reason);
                    prop_assert_eq!(&d.chain, &["alice-bot".to_string()], "{}", d.reason);
                }
            }
        }
    }
}
