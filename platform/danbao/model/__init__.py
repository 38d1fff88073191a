"""danbao.model"""
