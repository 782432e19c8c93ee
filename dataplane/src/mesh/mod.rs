//! Mesh emulation support: which nodes and links the routes between a set
//! of gateways use over a time window ([`plan`]), and the node configurations and link
//! table that bring them up as real meshplane processes ([`render`]).

#![warn(missing_docs)]

pub mod plan;
pub mod render;

pub use plan::{plan, MeshPlan, MeshSpec, PairPaths};
pub use render::{render, LinkSpec, NodeSpec, RenderOptions, Rendered};
