"""danbao.expr"""
