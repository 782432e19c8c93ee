//! Constellation geometry -> topology -> routes -> labels -> per-node tables.
