-- The seed project's DDL and rows, as its README gives them. The README's
-- collation utf8mb4_0900_ai_ci exists on MySQL 8 only; the test swaps in
-- MariaDB's utf8mb4_general_ci when the server lacks it.
CREATE TABLE `user_basic` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  `deleted_at` datetime(3) DEFAULT NULL,
  `username` varchar(100) NOT NULL,
  `password` varchar(36) NOT NULL,
  `sdp` text,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_user_basic_username` (`username`),
  KEY `idx_user_basic_deleted_at` (`deleted_at`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
CREATE TABLE `room_user` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  `deleted_at` datetime(3) DEFAULT NULL,
  `rid` int NOT NULL,
  `uid` int NOT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_room_user_deleted_at` (`deleted_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
CREATE TABLE `room_basic` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  `deleted_at` datetime(3) DEFAULT NULL,
  `identity` varchar(36) NOT NULL,
  `name` varchar(100) NOT NULL,
  `begin_at` datetime DEFAULT NULL,
  `end_at` datetime DEFAULT NULL,
  `create_id` int NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_room_basic_identity` (`identity`),
  KEY `idx_room_basic_deleted_at` (`deleted_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
INSERT INTO `user_basic`(`id`, `created_at`, `updated_at`, `deleted_at`, `username`, `password`, `sdp`) VALUES (1, NULL, NULL, NULL, 'root', '8017d0408f41b75489701e3fb1c3e773', NULL);
INSERT INTO `room_basic`(`id`, `created_at`, `updated_at`, `deleted_at`, `identity`, `name`, `begin_at`, `end_at`, `create_id`) VALUES (1, '2024-08-29 09:00:00.000', '2024-08-29 09:00:00.000', NULL, '5f0c3c5e-6f55-4a39-9b34-0d6f0a1d2b11', 'seed standup', '2030-01-02 09:00:00', '2030-01-02 10:00:00', 1);
