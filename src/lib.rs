pub mod jip3;
