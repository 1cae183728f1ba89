//! The page's views of a generation, each drawing from [`crate::state::Page`].

pub mod colors;
pub mod exit_chart;
pub mod heatmap;
pub mod lens;
pub mod multiples;
pub mod text;
pub mod trajectory;
